"""One hidden block of a fully connected network: Dense [→ BatchNorm] → activation [→ Dropout]."""

import keras

from bpfree import checks
from bpfree.layers.feedback import call_dense


@keras.saving.register_keras_serializable(package="bpfree")
class DenseBlock(keras.layers.Layer):
    """h = dropout(f(bn(x W + b))) around a given Dense layer (built by the learning rule: plain, or one
    whose backward pass uses other weights); ``call(..., feedback=False)`` gives its true gradient."""

    def __init__(self, dense, activation="tanh", batchnorm=False, dropout=0.0, dropout_seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.saving.deserialize_keras_object(dense) if isinstance(dense, dict) else dense
        self.units = self._units()
        self.activation = activation
        self.batchnorm = bool(batchnorm)
        self.dropout = float(dropout)
        self.dropout_seed = dropout_seed
        self.norm = keras.layers.BatchNormalization(name="batchnorm") if self.batchnorm else None
        self.act = keras.layers.Activation(activation_function(activation), name="activation")
        self.drop = keras.layers.Dropout(self.dropout, seed=dropout_seed, name="dropout") if self.dropout else None

    def _units(self):
        return int(self.dense.units)

    def build(self, input_shape):
        self.dense.build(input_shape)
        if self.norm is not None:
            self.norm.build((None, self.units))

    def call(self, inputs, training=None, feedback=True):
        a = call_dense(self.dense, inputs, feedback=feedback, training=training)
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
            "dense": keras.saving.serialize_keras_object(self.dense),
            "activation": self.activation,
            "batchnorm": self.batchnorm,
            "dropout": self.dropout,
            "dropout_seed": self.dropout_seed,
        }


ACTIVATIONS = ("tanh", "relu", "lrelu", "swish", "sigmoid", "linear")


def activation_function(name):
    """The Keras activation for one of `ACTIVATIONS` (``lrelu`` is leaky ReLU with slope 0.2)."""
    checks.choice("activation", name, ACTIVATIONS)
    return "leaky_relu" if name == "lrelu" else name
