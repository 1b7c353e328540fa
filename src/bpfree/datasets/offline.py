"""$BPFREE_DATA_DIR: IDX copies of tfds sets for machines where tfds cannot download.

$BPFREE_DATA_DIR names a directory of IDX folders named like the tfds sets (``mnist/``, ``fashion_mnist/``,
``kmnist/``; `bpfree.datasets.idx`). A name such as ``mnist`` or ``fmnist`` is served from its folder there
when tfds has not prepared the set in its data dir; when tfds has it prepared, or no such folder exists,
tfds serves it as before. The same splits (train / test) and preprocessing follow; the examples are in
the IDX files' order, not tfds's, so `bpfree.datasets.source` names which one served a search.
"""

import os

from bpfree.datasets import tfds_source
from bpfree.datasets.errors import DatasetError

ENV = "BPFREE_DATA_DIR"
SETS = tfds_source.IDX_SETS  # tfds names that have a standard IDX release


def idx_dir(tfds_name, tfds_data_dir=None):
    """The IDX folder serving tfds set `tfds_name`, or None where tfds serves it (see the module docstring)."""
    root = os.environ.get(ENV)
    if not root or tfds_name not in SETS:
        return None
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise DatasetError(f"{ENV}={root!r} is not a directory; valid: a directory of IDX folders "
                           f"({', '.join(s + '/' for s in SETS)}), or unset it.")
    folder = os.path.join(root, tfds_name)
    if not os.path.isdir(folder) or _tfds_prepared(tfds_name, tfds_data_dir):
        return None
    return folder


def _tfds_prepared(tfds_name, tfds_data_dir):
    """Whether tfds has `tfds_name` prepared in its data dir (tfds's own answer; its warnings about an
    empty version folder silenced: not preparing is the case this module exists for)."""
    import logging

    import tensorflow_datasets as tfds

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        return tfds.builder(tfds_name, data_dir=tfds_source.data_dir(tfds_data_dir)).is_prepared()
    except Exception:  # an unreadable tfds data dir: tfds cannot serve it either
        return False
    finally:
        absl_logger.setLevel(level)
