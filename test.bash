#!/usr/bin/env bash
# Sets up .venv (scripts/setup_venv.bash) and runs the test suite; extra arguments go to pytest
# (e.g. `./test.bash -m slow` for the long tier).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/setup_venv.bash"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m pytest -q "$@"
