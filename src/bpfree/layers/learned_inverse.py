"""A learned approximate inverse of a forward layer: the feedback path of difference target propagation.

For a forward layer f_l: R^{n_{l−1}} → R^{n_l}, the inverse is g_l(h) = σ(h V_l + c_l), V_l of shape
(n_l, n_{l−1}), σ the network's hidden activation (Lee et al. 2015; the `jsseely/tensorflow-target-prop`
seed). V_l starts orthogonal with gain 0.95 and c_l at zero, as in the seed. The layer also owns the
seed generator of the noise ε in its reconstruction loss, so the noise is reproducible and saved.
"""

import keras
import numpy as np

from bpfree.layers.block import activation_function
from bpfree.layers.own_variables import SavesOwnVariables


@keras.saving.register_keras_serializable(package="bpfree")
class LearnedInverse(SavesOwnVariables, keras.layers.Layer):
    """g(h) = σ(h V + c), mapping a layer's output space (``input`` units) back to its input space (``units``)."""

    def __init__(self, units, activation="tanh", gain=0.95, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self.gain = float(gain)
        self.seed = seed
        self._act = keras.activations.get(activation_function(activation))
        self.noise_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.units),
            initializer=keras.initializers.Orthogonal(gain=self.gain, seed=self.seed),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        return self._act(keras.ops.matmul(inputs, self.kernel) + self.bias)

    def noise(self, shape, stddev, dtype="float32"):
        """ε ~ N(0, stddev²) of the given shape, from this layer's own seed generator.

        Box–Muller on random integers, not `keras.random.normal`: from the same seed, TensorFlow's
        stateless normal and uniform draw other numbers under XLA than without it, its integers the same
        ones; so the noise (and DTP's update) is the same in eager, graph and XLA modes.
        """
        ops = keras.ops
        bits = keras.random.randint((2, *shape), 0, 2**24, dtype="int32", seed=self.noise_generator)
        u = (ops.cast(bits, "float32") + 0.5) / 2.0**24  # uniform on (0, 1), exact in float32
        eps = ops.sqrt(-2.0 * ops.log(u[0])) * ops.cos(2.0 * np.pi * u[1])
        return ops.cast(eps, dtype) * ops.cast(stddev, dtype)

    # Keras saves a layer's weights but not its seed generators' states; the noise stream must go on
    # where it stopped after a reload, so the state travels with V and c.
    def _saved_variables(self):
        return [self.kernel, self.bias, self.noise_generator.state]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation, "gain": self.gain,
                "seed": self.seed}
