"""`InputFeedback`: PEPITA's fixed random matrix F, which carries the output error back onto the input.

F has shape (input_dim, output_dim) and is drawn once, from a seed, uniform in ±scale·√(6/input_dim)
(the PEPITA code's 0.05·U(±√(6/d_in))); the layer maps an output error e to the input perturbation
e Fᵀ. F is a non-trainable weight, so it is fixed, reproducible and saved with the model.
For image inputs, ``input_dim`` is the shape (H, W, C): F has H·W·C rows, and e Fᵀ is reshaped to the
image (the flattened input is what the PEPITA code perturbs).
"""

import math

import keras

from bpfree import checks
from bpfree.arch import input_shape


@keras.saving.register_keras_serializable(package="bpfree")
class InputFeedback(keras.layers.Layer):
    """u = e Fᵀ with a fixed F of shape (`input_dim`, output units), uniform in ±scale·√(6/input_dim)."""

    def __init__(self, input_dim, scale=0.05, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.input_shape_ = input_shape(input_dim)
        self.input_dim = self.input_shape_[0] if len(self.input_shape_) == 1 else self.input_shape_
        self.scale = float(checks.number("scale", scale, lambda v: v >= 0, "a scale ≥ 0", owner="InputFeedback"))
        self.seed = seed

    def build(self, input_shape):
        features = math.prod(self.input_shape_)
        limit = self.scale * math.sqrt(6.0 / features)
        self.feedback = self.add_weight(
            name="feedback",
            shape=(features, int(input_shape[-1])),
            initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed),
            trainable=False,
        )

    def call(self, error):
        u = keras.ops.matmul(error, keras.ops.transpose(self.feedback))
        return keras.ops.reshape(u, (-1, *self.input_shape_)) if len(self.input_shape_) > 1 else u

    def compute_output_shape(self, error_shape):
        return tuple(error_shape[:-1]) + self.input_shape_

    def get_config(self):
        input_dim = self.input_dim if isinstance(self.input_dim, int) else list(self.input_dim)
        return {**super().get_config(), "input_dim": input_dim, "scale": self.scale, "seed": self.seed}
