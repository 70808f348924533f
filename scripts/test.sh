#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Debian's chromium for the real-browser widget tests (never a downloaded browser)
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

python -m pip install -q -e ".[test]"
# reference tools for comparison tests and benchmarks, kept out of the runtime dependencies
python -m pip install -q "cnmf==1.7.1"
python -m pip install -q --no-deps "sc3s==0.1.1"

# front end: build the bundle and run the JS unit tests (node's test runner)
if [ -f js/package.json ]; then
  (cd js && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test)
fi

python -m pytest -q "$@"
