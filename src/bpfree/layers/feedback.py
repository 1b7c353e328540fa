"""Fixed random feedback matrices as Keras layers.

`FeedbackProjection` holds a direct feedback matrix B_l of shape (units_l, output_dim) and computes
p_l = h_l B_l: the projection of a hidden layer's activity onto the output space, through which DFA,
DRTP and the local losses deliver their error signal (the gradient of the rule's surrogate objective
with respect to p_l, carried back through B_l, is (signal) B_lᵀ).

`FeedbackAlignmentDense` is a Dense layer whose backward pass uses a fixed random matrix B in place of
its kernel W (Lillicrap et al. 2016): for a = x W + b,
    ∂/∂W = xᵀ δ (as usual),   ∂/∂x = δ Bᵀ  (instead of δ Wᵀ).

Both keep B as a non-trainable weight drawn from a seeded initializer, so it is fixed, reproducible
and saved with the model.
"""

import keras
import tensorflow as tf

from bpfree import checks

from bpfree.layers.own_variables import SavesOwnVariables

BW_INITS = ("ortho", "lecun", "uniform", "gaussian")
_FEEDBACK_SEED_OFFSET = 10_000


def feedback_seed(seed, l):
    """The seed of the fixed feedback matrix of layer `l` (1-based) of a network seeded with `seed`."""
    return seed + _FEEDBACK_SEED_OFFSET + l - 1


def feedback_initializer(name, seed):
    """The initializer of fixed feedback matrices called `name`, seeded with `seed`.

    - ``ortho``: a random (semi-)orthogonal matrix (`keras.initializers.Orthogonal`).
    - ``lecun``: N(0, 1/fan_in) truncated (`LecunNormal`).
    - ``uniform``: U(±√(6/fan_in)) (`HeUniform`, the Kaiming-uniform init of the DRTP code).
    - ``gaussian``: N(0, 1/fan_in), not truncated.
    """
    checks.choice("bw_init", name, BW_INITS)
    if name == "ortho":
        return keras.initializers.Orthogonal(seed=seed)
    if name == "lecun":
        return keras.initializers.LecunNormal(seed=seed)
    if name == "uniform":
        return keras.initializers.HeUniform(seed=seed)
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="untruncated_normal", seed=seed)


@keras.saving.register_keras_serializable(package="bpfree")
class FeedbackProjection(keras.layers.Layer):
    """p = h B with a fixed random B of shape (input units, `output_dim`)."""

    def __init__(self, output_dim, bw_init="ortho", seed=None, **kwargs):
        super().__init__(**kwargs)
        feedback_initializer(bw_init, seed)  # validates the name early
        self.output_dim = int(output_dim)
        self.bw_init = bw_init
        self.seed = seed

    def build(self, input_shape):
        self.feedback = self.add_weight(
            name="feedback",
            shape=(int(input_shape[-1]), self.output_dim),
            initializer=feedback_initializer(self.bw_init, self.seed),
            trainable=False,
        )

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.feedback)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "bw_init": self.bw_init, "seed": self.seed}


@keras.saving.register_keras_serializable(package="bpfree")
class FeedbackAlignmentDense(SavesOwnVariables, keras.layers.Dense):
    """A Dense layer that sends errors down through a fixed random B (the shape of its kernel).

    Call with ``feedback=False`` for the true gradient (used by the `bp_cosine` tracker).
    """

    def __init__(self, units, bw_init="ortho", feedback_seed=None, **kwargs):
        super().__init__(units, **kwargs)
        feedback_initializer(bw_init, feedback_seed)
        self.bw_init = bw_init
        self.feedback_seed = feedback_seed

    def build(self, input_shape):
        super().build(input_shape)
        self.feedback = self.add_weight(
            name="feedback",
            shape=self.kernel.shape,
            initializer=feedback_initializer(self.bw_init, self.feedback_seed),
            trainable=False,
        )

    def call(self, inputs, training=None, feedback=True):
        if not feedback:
            return super().call(inputs, training=training)
        outputs = _feedback_matmul(inputs, self.kernel, self.feedback)
        if self.bias is not None:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Dense's own (de)serialisation knows only kernel and bias (and quantisation variables); the
    # fixed feedback matrix must travel with them.
    def _saved_variables(self):
        return [v for v in (self.kernel, self.bias, self.feedback) if v is not None]

    def get_config(self):
        return {**super().get_config(), "bw_init": self.bw_init, "feedback_seed": self.feedback_seed}


def call_dense(layer, inputs, feedback=True):
    """`layer(inputs)`, wired for the rule's backward pass when ``feedback`` (layers with feedback weights)."""
    if isinstance(layer, FeedbackAlignmentDense):
        return layer(inputs, feedback=feedback)
    return layer(inputs)


def _feedback_matmul(x, kernel, feedback):
    # tf.custom_gradient rather than keras.ops.custom_gradient: the kernel is a variable read inside
    # the function, and TF's version hands us the gradients for captured variables explicitly.
    @tf.custom_gradient
    def matmul(x, kernel):
        def grad(upstream):
            return tf.matmul(upstream, feedback, transpose_b=True), tf.matmul(x, upstream, transpose_a=True)

        return tf.matmul(x, kernel), grad

    return matmul(x, tf.convert_to_tensor(kernel))
