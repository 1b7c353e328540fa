"""The CIFAR ResNets of He et al. 2016 (§4.2) as plain Keras functional models, built as biotorch builds them.

ResNet-(6n+2) on 32×32 images: a 3×3 conv of 16 channels, then three stages of n basic blocks at 16, 32
and 64 channels (the first block of stages 2 and 3 halves the feature map with a stride-2 conv), global
average pooling and a dense softmax layer. A basic block is
    conv3×3 → BN → ReLU → conv3×3 → BN → (+ shortcut) → ReLU,
its shortcut the identity, or option A (`bpfree.layers.ShortcutA`: subsample, zero-pad the channels) where
the shape changes. ResNet-20 (n = 3) has 269,722 trainable parameters, ResNet-56 (n = 9) 853,018 (the paper's
0.27M and 0.85M).

The numbers are PyTorch's (biotorch/models/small_resnet.py):
- every conv is 3×3, padding 1 on both sides, no bias. For stride 1 Keras's "same" pads (1, 1): the same
  thing. For stride 2 on an even size "same" pads (0, 1), which shifts every window by one pixel against
  PyTorch's, so those convs get an explicit `ZeroPadding2D(1)` and "valid";
- batch norm with PyTorch's defaults: ε = 1e-5, momentum 0.1 (Keras's convention: 0.9), γ = 1, β = 0. In
  training mode both normalise with the biased batch variance; the running variance differs: PyTorch averages
  the unbiased one (× M/(M − 1), M = N·H·W ≥ 64·N), Keras the biased one, so inference-mode outputs differ
  by a hair (about 1/(2M) relative: 6e-5 for batches of 128);
- the dense layer has a bias (nn.Linear's). It ends in a softmax here (PyTorch's cross-entropy takes the
  logits: the same loss and gradients);
- ``init="xavier"`` (the default) is biotorch's benchmark init: every conv and dense kernel Glorot-uniform
  (PyTorch's xavier_uniform_, fans k²C_in and k²C_out), the dense bias 0: biotorch's BioModule replaces every conv and
  linear layer of small_resnet.py, bp included, by one that draws its weights that way (biotorch/layers/
  fa_constructor/conv.py, init_parameters; ``init: "xavier"`` in all its benchmark configs).
  ``init="kaiming_normal"`` is Idelbayev's pytorch_resnet_cifar10 (where small_resnet.py comes from):
  kernels N(0, 2/fan_in), not truncated, the dense bias U(±1/√fan_in) as nn.Linear draws it.

Kernels are seeded by `bpfree.seeds.layer_weights(seed, l)`, l the weighted layer's position (1-based, in
the order of the forward pass; the dense layer last, its bias (kaiming_normal only) from l + 1): the same
seed gives the same model.
"""

import keras

from bpfree import checks, seeds
from bpfree.layers.shortcut import ShortcutA

INITS = ("xavier", "kaiming_normal")
STAGE_WIDTHS = (16, 32, 64)
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's eps
BN_MOMENTUM = 0.9  # torch's momentum 0.1: running = 0.9·running + 0.1·batch


def _kernel_init(init, seed):
    if init == "xavier":
        return keras.initializers.GlorotUniform(seed=seed)
    return keras.initializers.VarianceScaling(2.0, mode="fan_in", distribution="untruncated_normal", seed=seed)


def _bias_init(init, seed, fan_in):
    if init == "xavier":
        return "zeros"
    bound = fan_in**-0.5
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


def resnet(depth, input_shape=(32, 32, 3), classes=10, seed=0, name=None, init="xavier", dtype=None, weight_decay=0.0):
    """The CIFAR ResNet of `depth` = 6n + 2 layers (20, 32, 44, 56, 110, ...), with option-A shortcuts,
    as a built, untrained `keras.Model` whose output is softmax probabilities over `classes`. ``dtype``: every
    layer's (None: Keras's default policy, float32; "float64" for exact comparisons). ``weight_decay``: λ of
    an L2 penalty λΣW² on every conv and dense kernel (PyTorch's SGD weight_decay wd is λ = wd/2; it also
    decays biases and batch norm's γ, β, which this does not)."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise checks.invalid("depth", depth, "6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...)")
    checks.choice("init", init, INITS)
    checks.number("weight_decay", weight_decay, lambda v: v >= 0, "must be ≥ 0")
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    n = (depth - 2) // 6
    layer_index = iter(range(1, depth + 1))

    def conv(x, filters, strides, prefix):
        l = next(layer_index)
        if strides == 1:
            padding = "same"  # pads (1, 1) for a 3×3 kernel at stride 1: PyTorch's padding=1
        else:
            x = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pad", dtype=dtype)(x)
            padding = "valid"
        return keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, use_bias=False,
                                   kernel_initializer=_kernel_init(init, seeds.layer_weights(seed, l)),
                                   kernel_regularizer=regularizer, name=prefix, dtype=dtype)(x)

    def bn(x, prefix):
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=prefix,
                                               dtype=dtype)(x)

    inputs = keras.Input(shape=tuple(input_shape), name="image", dtype=dtype)
    x = conv(inputs, STAGE_WIDTHS[0], 1, "conv1")
    x = keras.layers.ReLU(name="relu1", dtype=dtype)(bn(x, "bn1"))
    channels = STAGE_WIDTHS[0]
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        for block in range(1, n + 1):
            p = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            h = conv(x, width, strides, f"{p}_conv1")
            h = keras.layers.ReLU(name=f"{p}_relu1", dtype=dtype)(bn(h, f"{p}_bn1"))
            h = bn(conv(h, width, 1, f"{p}_conv2"), f"{p}_bn2")
            shortcut = x
            if strides != 1 or channels != width:
                shortcut = ShortcutA(width, strides=strides, name=f"{p}_shortcut", dtype=dtype)(x)
            x = keras.layers.Add(name=f"{p}_add", dtype=dtype)([h, shortcut])
            x = keras.layers.ReLU(name=f"{p}_relu2", dtype=dtype)(x)
            channels = width
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
    l = next(layer_index)
    outputs = keras.layers.Dense(classes, activation="softmax", name="fc", dtype=dtype,
                                 kernel_initializer=_kernel_init(init, seeds.layer_weights(seed, l)),
                                 kernel_regularizer=regularizer, bias_initializer=_bias_init(init, seeds.layer_weights(seed, l + 1), channels))(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def resnet20(input_shape=(32, 32, 3), classes=10, seed=0, name=None, init="xavier", dtype=None, weight_decay=0.0):
    """ResNet-20 (n = 3 blocks a stage, 0.27M parameters)."""
    return resnet(20, input_shape=input_shape, classes=classes, seed=seed, name=name, init=init, dtype=dtype,
                  weight_decay=weight_decay)


def resnet56(input_shape=(32, 32, 3), classes=10, seed=0, name=None, init="xavier", dtype=None, weight_decay=0.0):
    """ResNet-56 (n = 9 blocks a stage, 0.85M parameters)."""
    return resnet(56, input_shape=input_shape, classes=classes, seed=seed, name=name, init=init, dtype=dtype,
                  weight_decay=weight_decay)
