"""Dataset names: what `load` accepts, what each name means (`info`), and what serves it (`source`).

`resolve` maps a name to its family without touching any file; `backend` then decides what serves it
(a tfds name may be served from IDX files under $BPFREE_DATA_DIR: `bpfree.datasets.offline`).
"""

import dataclasses
import math
import os

from bpfree import checks
from bpfree.datasets import embedded, folder, idx, offline, preprocess, tfds_source
from bpfree.datasets.errors import DatasetError

# The most points xor:N draws (its arrays are held in memory: 10 million points take about 100 MB).
MAX_XOR_POINTS = 10_000_000
EMBEDDED = ("mnist1d", "mnist1d_seq", "digits", "yinyang", "xor")
DEFAULT_IMAGE_SIZE = 64

_EMBEDDED_INFO = {  # input shape, classes, split sizes, value range; checked against the data by tests
    "mnist1d": ((40,), 10, {"train": 4000, "test": 1000}),
    "mnist1d_seq": ((360,), 10, {"train": 4000, "test": 1000}),
    "digits": ((8, 8, 1), 10, {"train": 1437, "test": 360}),
    "yinyang": ((4,), 3, {"train": 5000, "validation": 1000, "test": 1000}),
    "xor": ((2,), 2, {"train": 4, "test": 4}),
}


def names():
    """Every name `load` accepts; ``tfds:NAME`` and ``folder:PATH`` stand for families."""
    return tuple(tfds_source.ALIASES) + EMBEDDED + ("xor:N", "tfds:NAME", "folder:PATH", "idx:PATH")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, known without reading its examples."""

    name: str
    input_shape: tuple
    num_classes: int
    splits: dict  # split name -> number of examples (None where tfds does not know it yet)
    value_range: tuple  # raw values the scalers map from
    kind: str  # "tfds", "idx", "folder" or "embedded": what serves it (`backend`)

    @property
    def features(self):
        """Input width once flattened for a dense network."""
        return int(math.prod(self.input_shape))

    @property
    def is_image(self):
        return len(self.input_shape) == 3


def resolve(name):
    """(kind, argument) for a dataset name; a DatasetError listing the valid names otherwise."""
    if not isinstance(name, str) or not name:
        raise checks.unknown("dataset name", name, names(), error=DatasetError, label="Invalid")
    if name in tfds_source.ALIASES:
        return "tfds", tfds_source.ALIASES[name]
    if name.startswith("tfds:") and len(name) > 5:
        return "tfds", name[5:]
    if name.startswith("folder:") and len(name) > 7:
        return "folder", os.path.expanduser(name[7:])
    if name.startswith("idx:") and len(name) > 4:
        return "idx", os.path.expanduser(name[4:])
    if name in EMBEDDED:
        return "embedded", name
    if name.startswith("xor:"):
        try:
            n = int(name[4:])
        except ValueError:
            n = 0
        if 4 <= n <= MAX_XOR_POINTS:
            return "embedded", name
        raise checks.invalid("dataset", name, f"xor:N needs an integer N in [4, {MAX_XOR_POINTS:_}], e.g. 'xor:1000'",
                             error=DatasetError)
    raise checks.unknown("dataset", name, names(), error=DatasetError)


def backend(name, data_dir=None):
    """(kind, argument) of what serves `name`: `resolve`'s, except a tfds set served from $BPFREE_DATA_DIR
    (("idx", its folder)) where tfds has not prepared it."""
    kind, arg = resolve(name)
    if kind == "tfds":
        folder = offline.idx_dir(arg, data_dir)
        if folder is not None:
            return "idx", folder
    return kind, arg


def source(name, data_dir=None):
    """What serves `name`, in words: "tfds (DIR)", "idx (DIR, md5 verified)", "folder (DIR)", "embedded"."""
    kind, arg = backend(name, data_dir)
    if kind == "tfds":
        return f"tfds ({tfds_source.data_dir(data_dir)})"
    if kind == "idx":
        verified = idx.describe(arg)[3]
        return f"idx ({os.path.abspath(arg)}, {'md5 verified' if verified else 'no known checksum for these files'})"
    if kind == "folder":
        return f"folder ({os.path.abspath(arg)})"
    return "embedded"


def info(name, *, image_size=DEFAULT_IMAGE_SIZE, data_dir=None, input_size=0, resize="bilinear"):
    """The `DatasetInfo` of `name`, from metadata only (never reads the examples; an IDX set's files are
    read and checked once per process, and kept), at ``input_size`` where given (see `load`)."""
    meta = _native_info(name, image_size, data_dir)
    shape = preprocess.check_resize(meta.input_shape, input_size, resize, name, error=DatasetError)
    return meta if shape == meta.input_shape else dataclasses.replace(meta, input_shape=shape)


def _native_info(name, image_size, data_dir):
    kind, arg = backend(name, data_dir)
    if kind == "idx":
        shape, classes, sizes, _ = idx.describe(arg)
        return DatasetInfo(name, tuple(shape), classes, sizes, (0.0, 255.0), kind)
    if kind == "tfds":
        shape, classes, sizes = tfds_source.describe(arg, data_dir)
        return DatasetInfo(name, shape, classes, sizes or {"train": None, "test": None}, (0.0, 255.0), kind)
    if kind == "folder":
        classes = folder.scan(arg)
        return DatasetInfo(name, (image_size, image_size, 3), len(classes), folder.split_sizes(classes),
                           (0.0, 255.0), kind)
    if arg.startswith("xor:"):
        n = int(arg[4:])
        return DatasetInfo(name, (2,), 2, {"train": n, "test": max(4, n // 4)}, (0.0, 1.0), kind)
    shape, classes, sizes = _EMBEDDED_INFO[arg]
    value_range = None if arg.startswith("mnist1d") else (0.0, 16.0) if arg == "digits" else (0.0, 1.0)
    return DatasetInfo(name, shape, classes, dict(sizes), value_range, kind)


def raw_splits(name, *, image_size=DEFAULT_IMAGE_SIZE, data_dir=None, download=True, split=None):
    """({"x_<split>", "y_<split>", ...} raw arrays, value range). tfds sets read only `split`."""
    kind, arg = backend(name, data_dir)
    if kind == "idx":
        return idx.load(arg), (0.0, 255.0)
    if kind == "tfds":
        x, y = tfds_source.load(arg, split, data_dir, download)
        return {f"x_{split}": x, f"y_{split}": y}, (0.0, 255.0)
    if kind == "folder":
        return folder.load(arg, image_size), (0.0, 255.0)
    if arg == "mnist1d":
        return embedded.mnist1d()
    if arg == "mnist1d_seq":
        return embedded.mnist1d(final_seq_length=360)
    if arg == "digits":
        return embedded.digits()
    if arg == "yinyang":
        return embedded.yinyang()
    if arg == "xor":
        return embedded.xor()
    return embedded.xor(int(arg[4:]))
