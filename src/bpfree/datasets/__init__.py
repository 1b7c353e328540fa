"""Datasets behind one API and one tf.data pipeline.

    from bpfree import datasets
    x, y = datasets.load("mnist1d", split="train", examples_frac=0.0, scaler="standard", seed=None)
    meta = datasets.info("cifar10")      # input shape, classes, split sizes, without reading data
    ds = datasets.pipeline("digits", "train", batch_size=64, problem_type="classification", training=True)
    datasets.names()
    datasets.source("mnist")              # what serves it: "tfds (DIR)" or "idx (DIR, md5 verified)", ...

Names: tensorflow-datasets sets (mnist, fmnist / fashion_mnist, kmnist, cifar10, cifar100, eurosat,
and any tfds image classification set as ``tfds:NAME``), image folders (``folder:PATH``, one
sub-folder per class), MNIST-format IDX directories (``idx:PATH``), and embedded offline sets
(mnist1d, mnist1d_seq, digits, yinyang, xor, ``xor:N``). Embedded and folder sets are prepared once
into $BPFREE_CACHE_DIR (default ~/.cache/bpfree) as .npz; tfds sets live in the tfds data dir, or,
offline, come from IDX copies under $BPFREE_DATA_DIR (`bpfree.datasets.offline`). Images can be
resized or padded to ``input_size`` (``resize="bilinear"|"pad"``) by load, info and pipeline.
"""

from bpfree.datasets.catalog import DatasetInfo, names, source
from bpfree.datasets.catalog import info as _info
from bpfree.datasets.errors import DatasetError
from bpfree.datasets.loading import SPLITS, load
from bpfree.datasets.pipeline import Augmentation, from_tensors, pipeline
from bpfree.datasets.preprocess import RESIZES, SCALERS


def info(name, **kwargs):
    """The `DatasetInfo` of `name` (input_shape, num_classes, splits, features), reading no examples."""
    return _info(name, **kwargs)


__all__ = ["load", "info", "pipeline", "from_tensors", "names", "source", "DatasetInfo", "DatasetError",
           "Augmentation", "SCALERS", "RESIZES", "SPLITS"]
