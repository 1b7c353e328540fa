"""One hidden block of a fully connected network: Dense [→ BatchNorm] → activation [→ Dropout]."""

import keras

from bpfree.layers.feedback import FeedbackAlignmentDense


@keras.saving.register_keras_serializable(package="bpfree")
class DenseBlock(keras.layers.Layer):
    """h = dropout(f(bn(x W + b))).

    ``bw_init`` set makes the Dense a `FeedbackAlignmentDense` (FA's fixed random backward matrix);
    ``call(..., feedback=False)`` then gives the true gradient.
    """

    def __init__(self, units, activation="tanh", batchnorm=False, dropout=0.0, use_bias=True,
                 weight_decay=0.0, kernel_seed=None, bw_init=None, feedback_seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self.batchnorm = bool(batchnorm)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.weight_decay = float(weight_decay)
        self.kernel_seed = kernel_seed
        self.bw_init = bw_init
        self.feedback_seed = feedback_seed
        dense_kwargs = dict(
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.GlorotUniform(seed=kernel_seed),
            kernel_regularizer=keras.regularizers.L2(self.weight_decay) if self.weight_decay else None,
            name="dense",
        )
        if bw_init is None:
            self.dense = keras.layers.Dense(self.units, **dense_kwargs)
        else:
            self.dense = FeedbackAlignmentDense(self.units, bw_init=bw_init, feedback_seed=feedback_seed, **dense_kwargs)
        self.norm = keras.layers.BatchNormalization(name="batchnorm") if self.batchnorm else None
        self.act = keras.layers.Activation(activation_function(activation), name="activation")
        self.drop = keras.layers.Dropout(self.dropout, seed=kernel_seed, name="dropout") if self.dropout else None

    def build(self, input_shape):
        self.dense.build(input_shape)
        if self.norm is not None:
            self.norm.build((None, self.units))

    def call(self, inputs, training=None, feedback=True):
        if isinstance(self.dense, FeedbackAlignmentDense):
            a = self.dense(inputs, feedback=feedback)
        else:
            a = self.dense(inputs)
        if self.norm is not None:
            a = self.norm(a, training=training)
        h = self.act(a)
        if self.drop is not None:
            h = self.drop(h, training=training)
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "batchnorm": self.batchnorm,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "weight_decay": self.weight_decay,
            "kernel_seed": self.kernel_seed,
            "bw_init": self.bw_init,
            "feedback_seed": self.feedback_seed,
        }


ACTIVATIONS = ("tanh", "relu", "lrelu", "swish", "sigmoid", "linear")


def activation_function(name):
    """The Keras activation for one of `ACTIVATIONS` (``lrelu`` is leaky ReLU with slope 0.2)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}.")
    return "leaky_relu" if name == "lrelu" else name
