#!/usr/bin/env bash
# train.bash EXPERIMENT_DIR [flags of `python -m bpfree`]
#
# Runs a resumable grid search: sets up .venv if missing (system Python in the Docker image),
# archives the source it runs into EXPERIMENT_DIR/src.tar.xz, writes EXPERIMENT_DIR/status
# (running / completed / crashed / failed, with the arguments), preloads tcmalloc when present, and
# restarts the search after a crash up to 5 times (it resumes: finished trials are skipped). Bad input
# (exit 1 or 2) is not retried. With no flags it runs hparams/quickstart.toml and ends by printing the
# best error per algorithm and writing EXPERIMENT_DIR/curves.png.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 EXPERIMENT_DIR [flags]   (python -m bpfree --helpfull lists the flags)" >&2
  exit 2
fi
exp="$1"; shift
args=("$@")
quickstart=0
if [[ ${#args[@]} -eq 0 ]]; then
  quickstart=1
  args=(--hparams "$root/hparams/quickstart.toml")
fi

if [[ -n "${BPFREE_SYSTEM_PYTHON:-}" ]]; then
  python=python3
else
  "$root/scripts/setup_venv.bash" || { echo "train.bash: could not set up .venv" >&2; exit 1; }
  python="$root/.venv/bin/python"
fi

mkdir -p "$exp" || exit 2
status() { printf '%s\t%s\t%s\n' "$1" "$(date -u +%FT%TZ)" "${args[*]}" > "$exp/status.tmp" && mv -f "$exp/status.tmp" "$exp/status"; }
# The source this search runs, for provenance (tracked files, or the tree without data/.venv).
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" ls-files -z | tar -C "$root" --null -T - -cJf "$exp/src.tar.xz.tmp" && mv -f "$exp/src.tar.xz.tmp" "$exp/src.tar.xz"
else
  tar -C "$root" --exclude=./data --exclude=./.venv -cJf "$exp/src.tar.xz.tmp" . && mv -f "$exp/src.tar.xz.tmp" "$exp/src.tar.xz"
fi
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 \
           /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
  if [[ -f "$lib" ]]; then export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"; break; fi
done
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

attempt=0
while true; do
  status running
  "$python" -m bpfree "$exp" "${args[@]}"
  rc=$?
  if [[ $rc -eq 0 ]]; then status completed; break; fi
  if [[ $rc -eq 1 || $rc -eq 2 ]]; then status failed; exit $rc; fi   # bad input: retrying will not help
  attempt=$((attempt + 1))
  if [[ $attempt -gt 5 ]]; then status crashed; echo "train.bash: crashed $attempt times; giving up" >&2; exit $rc; fi
  echo "train.bash: search exited with $rc; restart $attempt of 5 (it resumes)" >&2
  sleep 2
done

if [[ $quickstart -eq 1 ]]; then
  "$python" -m bpfree.results "$exp" --by algorithm --objective val_error_rate --plot "$exp/curves.png"
fi
