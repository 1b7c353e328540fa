#!/usr/bin/env bash
# Creates .venv/ at the repo root from Pipfile.lock (pipenv sync) and installs bpfree into it.
# Idempotent: a complete .venv (marked by .venv/.bpfree-ready, stamped with the lock's hash) is kept.
# Needs only python3.11 and pip; pipenv is installed for the current user if missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp=".venv/.bpfree-ready"
lock_hash="$(python3 -c 'import hashlib,sys;print(hashlib.sha256(open("Pipfile.lock","rb").read()).hexdigest())')"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
  exit 0
fi
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if ! "$python" -m pipenv --version >/dev/null 2>&1; then
  echo "setup: installing pipenv" >&2
  "$python" -m pip install --quiet --user pipenv 2>/dev/null || "$python" -m pip install --quiet pipenv
fi
echo "setup: creating .venv from Pipfile.lock (first run takes a few minutes)" >&2
export PIPENV_VENV_IN_PROJECT=1 PIPENV_NOSPIN=1 PIPENV_YES=1 PIPENV_VERBOSITY=-1
[[ -d .venv && ! -f .venv/bin/python ]] && rm -rf .venv
"$python" -m pipenv sync --dev --python "$("$python" -c 'import sys;print(sys.executable)')"
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "$lock_hash" > "$stamp"
