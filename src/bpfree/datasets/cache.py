"""Where prepared embedded and folder datasets live, and how they are written (atomic .npz, no pickle)."""

import hashlib
import json
import os

import numpy as np

from bpfree import io


def cache_dir():
    """$BPFREE_CACHE_DIR, else $XDG_CACHE_HOME/bpfree, else ~/.cache/bpfree."""
    path = os.environ.get("BPFREE_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "bpfree")
    return path


def cache_path(kind, key):
    """A stable file name for the prepared arrays of `kind` described by the JSON-able `key`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"{kind}-{digest}.npz")


def save_arrays(path, **arrays):
    """Writes arrays as an .npz atomically (temporary name, then os.replace)."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    io.write_atomic(path, write, ".npz")


def load_arrays(path):
    """The arrays of an .npz written by `save_arrays`, or None if absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None


def cached(kind, key, build):
    """`build()` -> dict of arrays, computed once and then read from the cache."""
    path = cache_path(kind, key)
    arrays = load_arrays(path)
    if arrays is None:
        arrays = build()
        save_arrays(path, **arrays)
    return arrays
