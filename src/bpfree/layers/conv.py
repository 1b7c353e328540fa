"""Convolutional hidden blocks: `ConvBlock` and `FeedbackAlignmentConv2D`.

A block is Conv2D [→ BatchNorm] → activation [→ Dropout] [→ poolings], 'same' or 'valid' padding, channels last;
its activity h_l is the (pooled) feature map. The Conv2D is built by the learning rule: plain
(`keras.layers.Conv2D`, backprop and the direct rules) or `FeedbackAlignmentConv2D`, whose backward
pass convolves the error with another kernel B of W's shape (k, k, C_in, C_out): for a = conv(x, W) + b,
    ∂/∂W = Conv2DBackpropFilter(x, δ)       (as usual),
    ∂/∂x = conv2d_transpose(δ, B)          (the transposed convolution with B instead of W),
with B fixed random (fa), learned with W's update (kp) or sign-concordant with W (usf, brsf, frsf);
see `bpfree.layers.feedback` for the ``backward`` options.
"""

import keras
import tensorflow as tf

from bpfree.layers.block import DenseBlock
from bpfree.layers.feedback import AlternativeBackward

POOL_LAYERS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


@keras.saving.register_keras_serializable(package="bpfree")
class FeedbackAlignmentConv2D(AlternativeBackward, keras.layers.Conv2D):
    """A 'same'- or 'valid'-padded, channels-last Conv2D whose backward pass uses another kernel B than W
    (the ``backward`` options of `bpfree.layers.feedback`). ``feedback=False`` gives the true gradient."""

    def __init__(self, filters, kernel_size, strides=1, bw_init="ortho", feedback_seed=None, backward="fixed",
                 **kwargs):
        kwargs = {"padding": "same", **kwargs}
        if kwargs["padding"] not in ("same", "valid") or kwargs.get("data_format", "channels_last") != "channels_last":
            raise ValueError("FeedbackAlignmentConv2D supports padding='same' or 'valid' and channels_last only.")
        super().__init__(filters, kernel_size, strides=strides, **kwargs)
        if tuple(self.dilation_rate) != (1, 1) or self.groups != 1:
            raise ValueError("FeedbackAlignmentConv2D supports dilation_rate=1 and groups=1 only.")
        self._init_backward(bw_init, feedback_seed, backward)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_backward()

    @property
    def _tf_strides(self):
        return (1, *self.strides, 1)

    def _forward(self, x, kernel):
        return tf.nn.conv2d(x, kernel, self._tf_strides, self.padding.upper())

    def _input_gradient(self, x, feedback, upstream):
        return tf.nn.conv2d_transpose(upstream, feedback, tf.shape(x), self._tf_strides, self.padding.upper())

    def _kernel_gradient(self, x, kernel, upstream):
        return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=upstream,
                                               strides=self._tf_strides, padding=self.padding.upper())

    def get_config(self):
        return {**super().get_config(), **self._backward_config()}


@keras.saving.register_keras_serializable(package="bpfree")
class ConvBlock(DenseBlock):
    """h = pools(dropout(f(bn(conv(x, W) + b)))) around a given Conv2D (built by the learning rule);
    ``pools``: (("max" | "average", size), ...), each with window = stride = size."""

    def __init__(self, conv, activation="tanh", batchnorm=False, dropout=0.0, dropout_seed=None, pools=(), **kwargs):
        super().__init__(conv, activation=activation, batchnorm=batchnorm, dropout=dropout, dropout_seed=dropout_seed,
                         **kwargs)
        self.pools = tuple((str(kind), int(size)) for kind, size in pools)
        self.pool_layers = [POOL_LAYERS[kind](size, name=f"{kind}_pool_{i}")
                            for i, (kind, size) in enumerate(self.pools, start=1)]

    @property
    def conv(self):
        return self.dense  # the block's weighted layer (DenseBlock's name for it)

    def _units(self):
        return int(self.dense.filters)

    def build(self, input_shape):
        self.dense.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.dense.compute_output_shape(input_shape))

    def call(self, inputs, training=None, feedback=True, unpooled=False):
        """h; with ``unpooled``, (the activity before the poolings, h) (the direct rules'
        ``project_before_pool`` projects the first)."""
        before = h = super().call(inputs, training=training, feedback=feedback)
        for pool in self.pool_layers:
            h = pool(h)
        return (before, h) if unpooled else h

    def unpooled_shape(self, input_shape):
        """The shape of the activity before the poolings (the convolution's output shape)."""
        return tuple(self.dense.compute_output_shape(input_shape))

    def compute_output_shape(self, input_shape):
        shape = self.dense.compute_output_shape(input_shape)
        for pool in self.pool_layers:
            shape = pool.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {**super().get_config(), "pools": [list(p) for p in self.pools]}
