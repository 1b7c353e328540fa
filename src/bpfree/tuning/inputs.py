"""What a trial's network reads: images (H, W, C) for an arch with convolutions, flat vectors otherwise.

A grid may mix dense and convolutional archs on one dataset; each trial gets the input_dim its arch
needs (`input_dim`) and the pipeline that yields it (`flattens`), so dense results do not change when
conv archs join a grid.
"""

import math

from bpfree import arch as arch_lib
from bpfree import builders

IMAGE_DATASETS = "digits, mnist, fmnist, kmnist, cifar10, cifar100, eurosat, tfds:NAME, folder:PATH"


def flattens(arch):
    """Whether a network of `arch` reads flat vectors (a dense arch) rather than images; a builder's model
    reads the dataset's own shape (`bpfree.builders`)."""
    return not builders.is_builder(arch) and not arch_lib.is_conv(arch)


def input_dim(arch, input_shape, dataset=None):
    """The `build_model` input_dim of `arch` on inputs of shape `input_shape` (a dataset's, or a number
    of features): the number of features for a dense arch, the image shape (H, W, C) for a conv arch.
    A conv arch on inputs that are not images is refused in one line."""
    shape = arch_lib.input_shape(input_shape)
    if builders.is_builder(arch):
        return shape if len(shape) == 3 else shape[0]
    if flattens(arch):
        return math.prod(shape)
    if len(shape) != 3:
        where = f"dataset {dataset!r}" if dataset else "these inputs"
        raise ValueError(
            f"Invalid arch {arch_lib.arch_string(arch)!r} for {where}: convolutions need images (height, width, "
            f"channels) and its inputs are vectors of {math.prod(shape)} features; valid: a dense arch "
            f"(e.g. '256-256'), or an image dataset ({IMAGE_DATASETS}).")
    return shape
