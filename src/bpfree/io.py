"""One atomic writer for every file bpfree writes: records, checkpoints, caches, figures, configs.

A file is written under a temporary name in its own directory, flushed to disk, then renamed over the
target. The temporary file is created as any file a program creates (0666 less the umask, applied by the
kernel: `tempfile.mkstemp` makes 0600 files, which other members of a group sharing an experiment
directory could not read; and reading the umask would set it to 0 for an instant, for every thread).
Readers see the old file or the new one, never half of one; a crash leaves no stray temporary file
except when the process is killed mid-write (names start with ".tmp-", never read as data).
"""

import json
import math
import os
import secrets

TEMP_PREFIX = ".tmp-"  # write_atomic's temporary files; a process killed mid-write leaves one behind


def remove_stale_temporaries(directory, before):
    """Removes write_atomic's temporary files under `directory` last modified before the time `before`
    (seconds since the epoch): writes that a killed process never finished. Files of writers still at
    work are newer. Returns the paths removed."""
    removed = []
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            try:
                if name.startswith(TEMP_PREFIX) and os.stat(path).st_mtime < before:
                    os.remove(path)
                    removed.append(path)
            except FileNotFoundError:
                continue  # gone meanwhile
    return removed


def _create_temporary(directory, suffix):
    """(fd, path) of a new, empty file beside the target: a fresh random name, never a file or link there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"No free temporary name in {directory}")


def write_atomic(path, write, suffix=""):
    """Calls ``write(tmp_path)`` on a temporary file beside `path`, then renames it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temporary(directory, suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path, payload):
    """Writes `payload` as strict JSON: NaN and ±inf become ``null`` (bare NaN is not JSON, and other
    readers reject it), numpy scalars and arrays become numbers and lists."""
    text = json.dumps(jsonable(payload), indent=1, allow_nan=False)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return write_atomic(path, write, ".json")


def jsonable(value):
    """`value` with non-finite floats as None and numpy values as Python ones (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [jsonable(v) for v in sorted(value)]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")
