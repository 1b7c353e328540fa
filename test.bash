#!/usr/bin/env bash
# Sets up .venv (scripts/setup_venv.bash) and runs the test suite; extra arguments go to pytest
# (e.g. `./test.bash -m slow` for the long tier).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/setup_venv.bash"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
# Two pytest-xdist workers (BPFREE_TEST_WORKERS; 0 runs in this process): many tests wait on subprocesses,
# so two workers on two cores finish the fast tier in well under its 15 minutes.
exec .venv/bin/python -m pytest -q -n "${BPFREE_TEST_WORKERS:-2}" "$@"
