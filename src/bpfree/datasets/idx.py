"""IDX directories: MNIST-format files (LeCun's format), raw or gzip-compressed, read and checked offline.

A directory holds the four standard files (each optionally ``.gz``; gzip is recognised by its magic
bytes, not by the name)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

Every file is checked before it is used, and anything wrong is one `DatasetError` line naming the file,
what is wrong and the valid value: the header (magic 0x00000803 images / 0x00000801 labels, element type
0x08 unsigned byte, number of dims), the payload length against the dims (a truncated or padded file),
image and label counts of a split, and — for the sets in `KNOWN` — the MD5 of the decompressed content.

Which known set a directory is: its own name (``mnist/``, ``fashion_mnist/``: the layout of
$BPFREE_DATA_DIR), else the set one of its files is byte-identical to. A file is checked against the set's
MD5 when its example count is the real file's, so a real file with one flipped byte is refused while a
small fixture or a subset named like MNIST's (other counts) is read unverified — and says so (`describe`).

Decoded arrays are kept for the life of the process (keyed by path, size and mtime), so a search that
loads a split per execution reads and checks each file once.
"""

import gzip
import hashlib
import os
import zlib

import numpy as np

from bpfree.datasets.errors import DatasetError

FILES = {  # split -> (images, labels), without the optional .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MAGIC = {"images": 0x00000803, "labels": 0x00000801}
DIMS = {"images": 3, "labels": 1}
UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CLASSES = 10

# Known releases: set -> file -> (examples, MD5 of the decompressed file). KMNIST, EMNIST, ... join here
# (their directory name under $BPFREE_DATA_DIR as the key); a set absent here is read unverified.
KNOWN = {
    "mnist": {
        "train-images-idx3-ubyte": (60000, "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": (60000, "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": (10000, "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": (10000, "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": (60000, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": (60000, "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": (10000, "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": (10000, "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}

_FILE_CACHE = {}  # (path, size, mtime_ns) -> (array, md5 of the decompressed bytes)


def locate(directory):
    """{standard name: path} of the four files in `directory` (the raw file where both exist)."""
    if not os.path.isdir(directory):
        raise DatasetError(f"IDX directory {directory!r} does not exist or is not a directory; valid: a directory "
                           f"holding {', '.join(n for pair in FILES.values() for n in pair)} (each optionally .gz).")
    found, missing = {}, []
    for pair in FILES.values():
        for stem in pair:
            path = next((os.path.join(directory, stem + ext) for ext in ("", ".gz")
                         if os.path.isfile(os.path.join(directory, stem + ext))), None)
            (missing.append(stem) if path is None else found.__setitem__(stem, path))
    if missing:
        raise DatasetError(f"IDX directory {directory!r} lacks {', '.join(missing)} (or .gz); valid: a directory "
                           "holding the four standard MNIST-format files.")
    return found


def read(path, kind):
    """(uint8 array, MD5 hex of the decompressed file) of the IDX file `path` of `kind` ("images": (N, H, W),
    "labels": (N,)), checked; cached for the process."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_CACHE:
        data = _bytes(path)
        array = _decode(path, data, kind)
        array.flags.writeable = False  # shared by every caller of the process
        _FILE_CACHE[key] = (array, hashlib.md5(data).hexdigest())
    return _FILE_CACHE[key]


def _bytes(path):
    """The decompressed content of `path` (gzip recognised by its magic bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"IDX file {path}: corrupt gzip data ({e}); valid: a complete gzip file or a raw "
                           "IDX file.") from None


def _decode(path, data, kind):
    magic = MAGIC[kind]
    if len(data) < 4:
        raise DatasetError(f"IDX file {path}: {len(data)} bytes, too short for an IDX header; valid: an IDX "
                           f"{kind} file (magic 0x{magic:08x}).")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        if found >> 8 == 0 and found & 0xFF in (1, 3):  # IDX, but labels where images belong (or back)
            raise DatasetError(f"IDX file {path}: magic 0x{found:08x} ({found & 0xFF} dims); valid: 0x{magic:08x} "
                               f"({kind}, element type 0x08, {DIMS[kind]} dims).")
        if data[2] != UBYTE and found >> 16 == 0 and data[3] == DIMS[kind]:
            raise DatasetError(f"IDX file {path}: element type 0x{data[2]:02x}; valid: 0x08 (unsigned byte), "
                               f"magic 0x{magic:08x}.")
        raise DatasetError(f"IDX file {path}: bad magic 0x{found:08x}; valid: 0x{magic:08x} ({kind}, element "
                           f"type 0x08, {DIMS[kind]} dims).")
    start = 4 + 4 * DIMS[kind]
    if len(data) < start:
        raise DatasetError(f"IDX file {path}: truncated header ({len(data)} bytes); valid: {start} header bytes.")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(DIMS[kind]))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - start
    if payload != expected:
        what = "truncated" if payload < expected else "too long"
        raise DatasetError(f"IDX file {path}: {what}, {payload} payload bytes; expected {expected} "
                           f"({' × '.join(map(str, dims))} from its header).")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def identify(directory, paths=None):
    """The `KNOWN` set of `directory`: its name, else the set one of its files is byte-identical to; or None."""
    name = os.path.basename(os.path.normpath(directory))
    if name in KNOWN:
        return name
    paths = paths or locate(directory)
    for stem, path in paths.items():
        digest = read(path, "images" if "images" in stem else "labels")[1]
        for known, files in KNOWN.items():
            if files[stem][1] == digest:
                return known
    return None


def load(directory):
    """({"x_train", "y_train", "x_test", "y_test"}: uint8 (N, H, W, 1) images, int64 labels), verified
    where `directory` is a known set (`identify`); see the module docstring."""
    arrays, _ = _load(directory)
    return arrays


def describe(directory):
    """(input_shape, num_classes, split sizes, verified) of the IDX directory: ``verified`` says whether
    every file matched its known MD5 (False for an unknown set or files of other counts)."""
    arrays, verified = _load(directory)
    classes = max(DEFAULT_CLASSES, int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0))) + 1)
    sizes = {split: len(arrays[f"y_{split}"]) for split in FILES}
    return arrays["x_train"].shape[1:], classes, sizes, verified


def _load(directory):
    paths = locate(directory)
    known = identify(directory, paths)
    arrays, verified = {}, known is not None
    for split, (images_stem, labels_stem) in FILES.items():
        x, x_md5 = read(paths[images_stem], "images")
        y, y_md5 = read(paths[labels_stem], "labels")
        for stem, array, digest in ((images_stem, x, x_md5), (labels_stem, y, y_md5)):
            if known is None:
                continue
            count, expected = KNOWN[known][stem]
            if len(array) != count:
                verified = False  # another set named like this one (a fixture, a subset): nothing to compare
            elif digest != expected:
                raise DatasetError(f"IDX file {paths[stem]}: MD5 {digest} of its decompressed content; expected "
                                   f"{expected} ({known}'s {stem}): the file is corrupt or another release.")
        if len(x) != len(y):
            raise DatasetError(f"IDX files {paths[images_stem]} and {paths[labels_stem]}: {len(x)} images but "
                               f"{len(y)} labels; valid: equal counts.")
        arrays[f"x_{split}"] = x[..., None]
        arrays[f"y_{split}"] = y.astype(np.int64)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DatasetError(f"IDX directory {directory!r}: train images {arrays['x_train'].shape[1:3]} but test "
                           f"images {arrays['x_test'].shape[1:3]}; valid: one image size.")
    return arrays, verified
