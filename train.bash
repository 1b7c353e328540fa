#!/usr/bin/env bash
# train.bash EXPERIMENT_DIR [flags of `python -m bpfree`]
#
# Runs a resumable grid search: sets up .venv if missing (system Python in the Docker image),
# archives the source it runs into EXPERIMENT_DIR/src.tar.xz, writes EXPERIMENT_DIR/status
# (running / completed / stopped / crashed / failed, with the arguments), preloads tcmalloc when
# present, and restarts the search after a crash up to 5 times (it resumes: finished trials are
# skipped). Bad input (exit 1 or 2) is not retried. Ctrl-C, SIGTERM or SIGHUP to train.bash stop the
# search (status stopped, exit 130 / 143 / 129), and so does SIGTERM or SIGINT to the search itself
# (exit 143 / 130, no restart). The status file and the source archive belong to the train.bash
# holding EXPERIMENT_DIR/.train.lock: a second one on the same experiment (refused by the search's
# lock, or searching another project) leaves them alone. The search starts from hparams/quickstart.toml
# unless --hparams names another preset (every flag given overrides the preset's value, and the search says
# which), and ends by printing the best configuration per rule and writing EXPERIMENT_DIR/curves.png.
# --dry_run runs the search's dry run alone (it says what the search
# would do and trains nothing): no status, no archive, nothing written to EXPERIMENT_DIR. A grid the
# search refuses without --yes (too many execution-epochs) exits 2 like other bad input: not retried.
# --help lists the search's flags; TensorFlow's start-up messages are kept off the console unless
# --verbose (or TF_CPP_MIN_LOG_LEVEL=0) is given.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python_for_bpfree() {
  if [[ -n "${BPFREE_SYSTEM_PYTHON:-}" ]]; then
    python=python3
  else
    "$root/scripts/setup_venv.bash" || { echo "train.bash: could not set up .venv" >&2; exit 1; }
    python="$root/.venv/bin/python"
  fi
}
for arg in "$@"; do   # --help / --helpfull anywhere: the search's own listing of its flags, exit 0
  case "$arg" in
    --) break ;;
    -h|-\?|--help|-help|--helpshort|-helpshort|--helpfull|-helpfull) python_for_bpfree; exec "$python" -m bpfree "$arg" ;;
  esac
done
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 EXPERIMENT_DIR [flags]   ($0 --help lists the flags)" >&2
  exit 2
fi
exp="$1"; shift
args=("$@")
# --dry_run (absl's spellings; the last one wins): the search says what it would do and trains nothing,
# so train.bash writes nothing to EXPERIMENT_DIR either (no status, no source archive, no restarts).
dry_run=0
for arg in ${args[@]+"${args[@]}"}; do
  if [[ "$arg" == "--" ]]; then break; fi
  name="${arg#-}"; name="${name#-}"
  [[ "$arg" == -* ]] || name=""
  case "$name" in
    dry_run|dry_run=[tT]|dry_run=[tT][rR][uU][eE]|dry_run=1) dry_run=1 ;;
    nodry_run|dry_run=[fF]|dry_run=[fF][aA][lL][sS][eE]|dry_run=0) dry_run=0 ;;
  esac
done

python_for_bpfree
if [[ $dry_run -eq 1 ]]; then exec "$python" -m bpfree "$exp" "${args[@]}"; fi

mkdir -p "$exp" || exit 2
# One train.bash owns the experiment's status (fd 9 holds the lock until train.bash exits; the search
# does not inherit it). Without flock(1), every train.bash writes it, as before.
owner=1
if command -v flock >/dev/null 2>&1 && exec 9>>"$exp/.train.lock"; then
  if ! flock -n 9; then
    owner=0
    echo "train.bash: another train.bash runs on $exp; leaving its status and src.tar.xz alone" >&2
  fi
fi
# Temporary files get fresh names (mktemp: never an existing file or a link another user left there) and
# replace their target by a rename (mv -T: a link or directory named status is replaced, never followed).
replace() {  # replace TARGET COMMAND...: COMMAND writes to "$tmp"; on success it becomes TARGET
  local target="$1" tmp; shift
  tmp="$(mktemp "$exp/.tmp-XXXXXXXX")" || return 1
  chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" "$tmp"
  if "$@"; then mv -fT "$tmp" "$target"; else rm -f "$tmp"; return 1; fi
}
write_status() { printf '%s\t%s\t%s\n' "$1" "$(date -u +%FT%TZ)" "${args[*]}" > "$tmp"; }
status() {
  [[ $owner -eq 1 ]] || return 0
  replace "$exp/status" write_status "$1"
}
archive() { tar -C "$root" "$@" -cJf "$tmp"; }
# The source this search runs, for provenance (tracked files, or the tree without data/.venv).
if [[ $owner -eq 1 ]]; then
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    replace "$exp/src.tar.xz" archive --null -T <(git -C "$root" ls-files -z)
  else
    replace "$exp/src.tar.xz" archive --exclude=./data --exclude=./.venv .
  fi
fi
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 \
           /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
  if [[ -f "$lib" ]]; then export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"; break; fi
done

# The search runs in the background in its own process group (setsid), so that a signal to
# train.bash is handled at once: the trap stops the search (and the workers it started) and says so.
child=""
stop() {
  trap - INT TERM HUP
  if [[ -n "$child" ]]; then
    kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  status stopped
  echo "train.bash: stopped by a signal (exit $1)" >&2
  exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop 129' HUP
detach=()
if command -v setsid >/dev/null 2>&1; then detach=(setsid); fi

with_sigint='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable] + sys.argv[1:])'
attempt=0
while true; do
  status running
  # A background job of a script starts with SIGINT ignored, and Python keeps an ignored SIGINT ignored:
  # the search is exec'd with SIGINT at its default, so that Ctrl-C to it (or kill -INT) stops it.
  ${detach[@]+"${detach[@]}"} "$python" -c "$with_sigint" -m bpfree "$exp" "${args[@]}" 9>&- &
  child=$!
  wait "$child"
  rc=$?
  child=""
  if [[ $rc -eq 0 ]]; then status completed; break; fi
  if [[ $rc -eq 1 || $rc -eq 2 ]]; then status failed; exit $rc; fi   # bad input: retrying will not help
  if [[ $rc -eq 130 || $rc -eq 143 ]]; then   # SIGINT / SIGTERM to the search: stopped by the user
    status stopped; echo "train.bash: the search was stopped (exit $rc); not restarting" >&2; exit $rc
  fi
  attempt=$((attempt + 1))
  if [[ $attempt -gt 5 ]]; then status crashed; echo "train.bash: crashed $attempt times; giving up" >&2; exit $rc; fi
  echo "train.bash: search exited with $rc; restart $attempt of 5 (it resumes)" >&2
  sleep 2
done
