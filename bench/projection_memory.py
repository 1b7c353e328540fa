"""The memory of the direct rules' fixed projections B_l (dfa, sdfa, drtp, cce, mse) on conv nets.

B_l has one row per feature of the block's (pooled) map, H·W·C, and one column per class; with
``projection_pool=k`` the map is average-pooled k×k first (k² fewer rows). Computed from the arch and
`FeedbackProjection.features` without building anything, so ImageNet-sized nets can be listed too. The ResNets
(`bpfree.models.resnet`, trained through `bpfree.convert`) are counted from the converted model's projections:
one B_l per hidden conv, on its block's activity (`bpfree.models.convert`: a residual block's second conv
projects its batch-normed output, before the Add).

    python bench/projection_memory.py
"""

import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from bpfree.arch import ConvSpec, parse_layers
from bpfree.layers.feedback import FeedbackProjection

VGG16 = ("conv64k3-conv64k3-pool2-conv128k3-conv128k3-pool2-conv256k3-conv256k3-conv256k3-pool2-"
         "conv512k3-conv512k3-conv512k3-pool2-conv512k3-conv512k3-conv512k3-pool2-4096-4096")
NETS = (
    ("LeNet-5 (hparams/lenet5.toml), MNIST", "conv6k5-pool2-conv16k5-pool2-120-84", (28, 28, 1), 10),
    ("small VGG (hparams/vgg_small.toml), CIFAR-10", "conv32k3-conv32k3-pool2-conv64k3-conv64k3-pool2-256",
     (32, 32, 3), 10),
    ("VGG-16, CIFAR-10", VGG16, (32, 32, 3), 10),
    ("VGG-16, ImageNet", VGG16, (224, 224, 3), 1000),
)
POOLS = (1, 2, 4)


def projection_floats(arch, input_shape, classes, pool):
    """Σ_l rows(B_l)·classes for the direct rules' projections of `arch` on `input_shape`."""
    shape, total = tuple(input_shape), 0
    for block in parse_layers(arch):
        if isinstance(block, ConvSpec):
            shape = block.output_shape(shape)
            rows = FeedbackProjection(classes, pool=pool).features((None, *shape))
        else:
            shape, rows = (block,), block
        total += rows * classes
    return total


def weight_floats(arch, input_shape, classes):
    """The network's own weights (kernels and biases)."""
    shape, total = tuple(input_shape), 0
    for block in parse_layers(arch):
        if isinstance(block, ConvSpec):
            total += block.kernel**2 * shape[-1] * block.filters + block.filters
            shape = block.output_shape(shape)
        else:
            total += math.prod(shape) * block + block
            shape = (block,)
    return total + math.prod(shape) * classes + classes


RESNETS = (("ResNet-20, CIFAR-10", "resnet20"), ("ResNet-56, CIFAR-10", "resnet56"))


def resnet_floats(builder, pool):
    """(the network's weights, Σ_l rows(B_l)·classes) of a ResNet converted for dfa with `projection_pool`."""
    from bpfree import convert, models  # TensorFlow: only for these rows

    source = getattr(models, builder)((32, 32, 3), 10, seed=0)
    converted = convert(source, "dfa", seed=0, projection_pool=pool)
    return source.count_params(), sum(math.prod(p.feedback.shape) for p in converted.projections)


def mib(floats):
    size = floats * 4 / 2**20
    return f"{size:,.1f} MiB" if size >= 1 else f"{size * 1024:,.0f} KiB"


def main():
    print("| net | input | weights | " + " | ".join(f"B_l, projection_pool={k}" for k in POOLS) + " |")
    print("|---|---|---|" + "---|" * len(POOLS))
    for name, arch, shape, classes in NETS:
        cells = [mib(projection_floats(arch, shape, classes, k)) for k in POOLS]
        print(f"| {name} | {'×'.join(map(str, shape))}, {classes} classes | {mib(weight_floats(arch, shape, classes))} | "
              + " | ".join(cells) + " |")
    for name, builder in RESNETS:
        counts = [resnet_floats(builder, k) for k in POOLS]
        print(f"| {name} | 32×32×3, 10 classes | {mib(counts[0][0])} | " + " | ".join(mib(c) for _, c in counts) + " |")


if __name__ == "__main__":
    main()
