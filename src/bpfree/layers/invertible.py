"""An exactly invertible square dense layer: h = f(x W + b), W square, f leaky-ReLU (slope 0.1) or linear.

    inverse:    g(h) = (f⁻¹(h) − b) W⁻¹,   f⁻¹(h) = h (h ≥ 0), 10 h (h < 0)
    derivative: D = f'(f⁻¹(h)) ∈ {1, 0.1}, read from the activity itself (all ones if linear)

as in the GAIT-prop seed (`inv_layer.py`). W⁻¹ is computed in float64 when asked for.
"""

import keras
import tensorflow as tf

SLOPE = 0.1


@keras.saving.register_keras_serializable(package="bpfree")
class InvertibleDense(keras.layers.Layer):
    def __init__(self, linear=False, orthogonal_init=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.linear = bool(linear)
        self.orthogonal_init = bool(orthogonal_init)
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        init = (keras.initializers.Orthogonal(seed=self.seed) if self.orthogonal_init
                else keras.initializers.RandomNormal(stddev=(2.0 / (d + d)) ** 0.5, seed=self.seed))
        self.kernel = self.add_weight(name="kernel", shape=(d, d), initializer=init)
        self.bias = self.add_weight(name="bias", shape=(d,), initializer="zeros")

    @property
    def units(self):
        return int(self.kernel.shape[0])

    def call(self, inputs):
        return self.activation(keras.ops.matmul(inputs, self.kernel) + self.bias)

    def activation(self, a):
        return a if self.linear else keras.ops.where(a >= 0, a, SLOPE * a)

    def activation_inverse(self, h):
        return h if self.linear else tf.where(h >= 0, h, h / SLOPE)

    def derivative(self, h):
        """D = f'(f⁻¹(h)), from the activity."""
        if self.linear:
            return tf.ones_like(h)
        return tf.where(h >= 0, tf.ones_like(h), SLOPE * tf.ones_like(h))

    def kernel_inverse(self, dtype="float64"):
        return tf.linalg.inv(tf.cast(self.kernel, dtype))

    def inverse(self, h, dtype="float64"):
        """g(h) = (f⁻¹(h) − b) W⁻¹, computed in `dtype`."""
        h = tf.cast(h, dtype)
        return tf.matmul(self.activation_inverse(h) - tf.cast(self.bias, dtype), self.kernel_inverse(dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "linear": self.linear, "orthogonal_init": self.orthogonal_init,
                "seed": self.seed}
