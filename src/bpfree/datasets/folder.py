"""Image folders: one sub-folder per class (how Caltech-256 is used), resized with padding.

Images are decoded with TensorFlow, converted to RGB and resized to `image_size` × `image_size`
keeping their aspect ratio (`tf.image.resize_with_pad`). The split is deterministic and stratified:
within each class (files sorted by name) every fifth image is a test image. Decoded arrays are cached
as .npz keyed by the folder, the size and every file's name, size and mtime.
"""

import os

import numpy as np

from bpfree.datasets import cache
from bpfree.datasets.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEST_EVERY = 5


def scan(path):
    """{class name: [image paths]} for the class sub-folders of `path` (sorted), validated."""
    if not os.path.isdir(path):
        raise DatasetError(f"Image folder {path!r} does not exist or is not a directory.")
    classes = {}
    for name in sorted(os.listdir(path)):
        sub = os.path.join(path, name)
        if os.path.isdir(sub):
            files = sorted(os.path.join(sub, f) for f in os.listdir(sub) if f.lower().endswith(IMAGE_EXTENSIONS))
            if files:
                classes[name] = files
    if not classes:
        raise DatasetError(
            f"Image folder {path!r} holds no images: expected one sub-folder per class with "
            f"{', '.join(IMAGE_EXTENSIONS)} files."
        )
    if len(classes) < 2:
        raise DatasetError(f"Image folder {path!r} has only one class ({next(iter(classes))!r}); need at least two.")
    return classes


def split_sizes(classes):
    test = sum(len(files) // TEST_EVERY for files in classes.values())
    total = sum(len(files) for files in classes.values())
    return {"train": total - test, "test": test}


def load(path, image_size):
    """All splits: {"x_train", "y_train", "x_test", "y_test"} (uint8 images, int64 labels)."""
    classes = scan(path)
    key = {
        "path": os.path.abspath(path),
        "size": image_size,
        "files": [(f, os.path.getsize(f), os.path.getmtime(f)) for files in classes.values() for f in files],
    }
    return cache.cached("folder", key, lambda: _decode(classes, image_size))


def _decode(classes, image_size):
    import tensorflow as tf

    arrays = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for label, files in enumerate(classes.values()):
        for i, f in enumerate(files):
            try:
                image = tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError as e:
                raise DatasetError(f"Cannot decode image {f}: {e.message}") from None
            image = tf.image.resize_with_pad(image, image_size, image_size)
            split = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
            arrays[f"x_{split}"].append(np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8))
            arrays[f"y_{split}"].append(label)
    shape = (0, image_size, image_size, 3)
    return {
        k: (np.stack(v) if v else np.zeros(shape, np.uint8)) if k.startswith("x") else np.asarray(v, np.int64)
        for k, v in arrays.items()
    }
