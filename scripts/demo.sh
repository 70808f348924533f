#!/usr/bin/env bash
# Install exprmat_widgets and open the tutorial notebook (real data shipped with the package) in JupyterLab.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python -m pip install -q -e ".[test]"
exec exprmat-widgets demo "$@"
