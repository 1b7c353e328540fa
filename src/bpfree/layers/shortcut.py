"""The parameter-free "option A" shortcut of the CIFAR ResNets (He et al. 2016, §4.2).

Where a residual block halves the feature map and doubles the channels, the identity shortcut cannot be
added as it is: option A subsamples it, y = x[:, ::s, ::s, :], and pads the channel axis with zeros up to
the block's width. As biotorch's `IdentityPadding` (biotorch/models/small_resnet.py, after Idelbayev's
pytorch_resnet_cifar10) does, the zeros go on both sides: for C_in → C_out channels, (C_out − C_in) // 2
zero channels before x's and the rest after (C_out = 2·C_in: C_in/2 on each side, PyTorch's planes // 4).
Its gradient is the transpose: the middle channels of the upstream gradient, scattered back to the
subsampled positions (zeros elsewhere).
"""

import keras


@keras.saving.register_keras_serializable(package="bpfree")
class ShortcutA(keras.layers.Layer):
    """y = pad_channels(x[:, ::strides, ::strides, :]) to `filters` channels, channels last, no weights."""

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        if self.filters < 1 or self.strides < 1:
            raise ValueError(f"Invalid ShortcutA filters={filters!r}, strides={strides!r}: both must be >= 1.")

    def pads(self, channels):
        """(zero channels before, after) for an input of `channels` channels."""
        extra = self.filters - int(channels)
        if extra < 0:
            raise ValueError(f"ShortcutA cannot map {channels} channels to fewer ({self.filters}).")
        return extra // 2, extra - extra // 2

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"ShortcutA takes (N, H, W, C) feature maps, got shape {tuple(input_shape)}.")
        self.pads(input_shape[-1])

    def call(self, inputs):
        s = self.strides
        before, after = self.pads(inputs.shape[-1])
        y = inputs[:, ::s, ::s, :]
        if before or after:
            y = keras.ops.pad(y, [[0, 0], [0, 0], [0, 0], [before, after]])
        return y

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.strides
        return (n, None if h is None else -(-h // s), None if w is None else -(-w // s), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}
