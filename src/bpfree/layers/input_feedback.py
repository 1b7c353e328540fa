"""`InputFeedback`: PEPITA's fixed random matrix F, which carries the output error back onto the input.

F has shape (input_dim, output_dim) and is drawn once, from a seed, uniform in ±scale·√(6/input_dim)
(the PEPITA code's 0.05·U(±√(6/d_in))); the layer maps an output error e to the input perturbation
e Fᵀ. F is a non-trainable weight, so it is fixed, reproducible and saved with the model.
"""

import math

import keras

from bpfree import checks


@keras.saving.register_keras_serializable(package="bpfree")
class InputFeedback(keras.layers.Layer):
    """u = e Fᵀ with a fixed F of shape (`input_dim`, output units), uniform in ±scale·√(6/input_dim)."""

    def __init__(self, input_dim, scale=0.05, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.scale = float(checks.number("scale", scale, lambda v: v >= 0, "a scale ≥ 0", owner="InputFeedback"))
        self.seed = seed

    def build(self, input_shape):
        limit = self.scale * math.sqrt(6.0 / self.input_dim)
        self.feedback = self.add_weight(
            name="feedback",
            shape=(self.input_dim, int(input_shape[-1])),
            initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed),
            trainable=False,
        )

    def call(self, error):
        return keras.ops.matmul(error, keras.ops.transpose(self.feedback))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.input_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "scale": self.scale, "seed": self.seed}
