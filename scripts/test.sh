#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Debian's chromium for the real-browser widget tests (never a downloaded browser)
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

python -m pip install -q -e ".[test,ontology]"
# reference tools for comparison tests and benchmarks, kept out of the runtime dependencies
python -m pip install -q "cnmf==1.7.1"
python -m pip install -q --no-deps "sc3s==0.1.1"

# front end: build the bundle and run the JS unit tests (node's test runner)
if [ -f js/package.json ]; then
  (cd js && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test)
fi

status=0
# the committed bundle must be what js/ builds (a stale committed file would otherwise ship)
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- exprmat_widgets/static; then
  echo "ERROR: exprmat_widgets/static differs from a fresh build of js/;" \
       "run '(cd js && npm run build)' and commit the result:" >&2
  git diff --stat -- exprmat_widgets/static >&2
  status=1
fi
# two workers, a test file each (browser tests wait on the page and the kernel much of the
# time); the slowest tests are listed, so a run that grows past the 20-minute budget says where
python -m pytest -q --durations=25 -n 2 --dist loadfile "$@" || status=$?

# again under numba's workqueue threading layer (the one of installs without TBB / OpenMP,
# which aborts on parallel kernels launched from two threads at once), over the tests that
# run the parallel kernels (Wilcoxon, row gather) from threads (~2 min on 2 cores; cNMF and
# SC3 kernels are serial, and test_numba_threads runs them from threads under workqueue too)
NUMBA_THREADING_LAYER=workqueue python -m pytest -q -m "not browser" tests/test_markers.py \
  tests/test_annotation.py tests/test_numba_threads.py || status=$?
exit "$status"
