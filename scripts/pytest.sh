#!/usr/bin/env bash
# Runs pytest with the project's venv, its test files spread over the machine's cores (at most
# four; pytest-xdist, one file per worker at a time: decision 0127). PYTEST_WORKERS=N sets the
# number of workers, 0 runs everything in this one process (for -s, --pdb, a single test).
# pytest's exit code 5 ("no tests collected") is not a failure for a tier that has no tests yet;
# every other non-zero code is.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
cores=$(nproc 2>/dev/null || echo 1)
workers=${PYTEST_WORKERS:-$((cores < 4 ? cores : 4))}
.venv/bin/python -m pytest --numprocesses "$workers" --dist loadfile "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest: no tests collected for: ${*:-everything}"
  exit 0
fi
exit "$rc"
