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

`FeedbackAlignmentDense(..., backward=...)` chooses the B of the backward pass (the one option that
Kolen–Pollack and the sign-concordant rules add; B has the kernel's shape, (fan_in, fan_out)):
- ``"fixed"``: B, fixed random (feedback alignment; the default).
- ``"learned"``: B trainable, and its gradient is the kernel's, xᵀ δ (Kolen–Pollack: ΔB = ΔW).
- ``"sign"``: B = sign(W)·s, s = √(2/(fan_in + fan_out)), the std of the Glorot init (uSF).
- ``"random_sign"``: B = |R| ⊙ sign(W), R fixed random, kept in ``feedback`` (frSF).
- ``"batch_random_sign"``: B = |R_t| ⊙ sign(W), R_t ~ U(±√(6/(fan_in + fan_out))) drawn afresh at every
  training call t by `counter_uniform` from (feedback_seed, t), the same bits in eager, graph and
  XLA modes; t is a counter saved with the layer (brSF).
"""

import random

import keras
import tensorflow as tf

from bpfree import checks

from bpfree.layers.own_variables import SavesOwnVariables

BW_INITS = ("ortho", "lecun", "uniform", "gaussian")
BACKWARDS = ("fixed", "learned", "sign", "random_sign", "batch_random_sign")
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
    """A Dense layer that sends errors down through another matrix B than its kernel (the module
    docstring lists the ``backward`` options; ``"fixed"``, a fixed random B, is feedback alignment).

    Call with ``feedback=False`` for the true gradient (used by the `bp_cosine` tracker).
    """

    def __init__(self, units, bw_init="ortho", feedback_seed=None, backward="fixed", **kwargs):
        super().__init__(units, **kwargs)
        feedback_initializer(bw_init, feedback_seed)
        self.backward = checks.choice("backward", backward, BACKWARDS)
        if backward == "batch_random_sign" and feedback_seed is None:
            feedback_seed = random.SystemRandom().randrange(2**31 - 1)  # recorded in the config
        self.bw_init = bw_init
        self.feedback_seed = feedback_seed
        self.feedback = None
        self.feedback_step = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.backward in ("fixed", "learned", "random_sign"):
            self.feedback = self.add_weight(
                name="feedback",
                shape=self.kernel.shape,
                initializer=feedback_initializer(self.bw_init, self.feedback_seed),
                trainable=self.backward == "learned",
            )
        elif self.backward == "batch_random_sign":
            self.feedback_step = self.add_weight(name="feedback_step", shape=(), dtype="int64",
                                                 initializer="zeros", trainable=False)

    @property
    def sign_scale(self):
        """s = √(2/(fan_in + fan_out)): the scale of uSF's B = sign(W)·s, and the std of R (brSF)."""
        fan_in, fan_out = self.kernel.shape
        return (2.0 / (fan_in + fan_out)) ** 0.5

    def random_magnitudes(self, step):
        """R_t of ``batch_random_sign``: U(±√3·s), a counter-based draw from (feedback_seed, t)."""
        limit = 3.0**0.5 * self.sign_scale
        u = counter_uniform(self.kernel.shape, self.feedback_seed, step)
        return keras.ops.cast(limit * (2.0 * u - 1.0), self.kernel.dtype)

    def call(self, inputs, training=None, feedback=True):
        if self.backward == "batch_random_sign" and training:
            # One draw per training call, with or without the rule's wiring (so that a replayed
            # backprop pass for the bp_cosine tracker advances the counter exactly as the rule's does).
            step = tf.identity(self.feedback_step)
            self.feedback_step.assign_add(1)
        if not feedback:
            return super().call(inputs, training=training)
        if self.backward == "learned":
            outputs = _learned_feedback_matmul(inputs, self.kernel, self.feedback)
        else:
            if self.backward == "fixed":
                feedback_matrix = self.feedback
            else:
                sign = tf.sign(tf.stop_gradient(tf.convert_to_tensor(self.kernel)))
                if self.backward == "sign":
                    feedback_matrix = sign * self.sign_scale
                elif self.backward == "random_sign":
                    feedback_matrix = tf.abs(self.feedback) * sign
                else:
                    feedback_matrix = tf.abs(self.random_magnitudes(step if training else self.feedback_step)) * sign
            outputs = _feedback_matmul(inputs, self.kernel, feedback_matrix)
        if self.bias is not None:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Dense's own (de)serialisation knows only kernel and bias (and quantisation variables); the
    # feedback matrix (fa, kp, frsf) or the draw counter (brsf) must travel with them.
    def _saved_variables(self):
        return [v for v in (self.kernel, self.bias, self.feedback, self.feedback_step) if v is not None]

    def get_config(self):
        config = {**super().get_config(), "bw_init": self.bw_init, "feedback_seed": self.feedback_seed}
        if self.backward != "fixed":  # feedback alignment's config stays what it was
            config["backward"] = self.backward
        return config


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


def _learned_feedback_matmul(x, kernel, feedback):
    # As `_feedback_matmul`, and the trainable B receives the kernel's gradient xᵀ δ (Kolen–Pollack).
    @tf.custom_gradient
    def matmul(x, kernel, feedback):
        def grad(upstream):
            kernel_grad = tf.matmul(x, upstream, transpose_a=True)
            return tf.matmul(upstream, feedback, transpose_b=True), kernel_grad, kernel_grad

        return tf.matmul(x, kernel), grad

    return matmul(x, tf.convert_to_tensor(kernel), tf.convert_to_tensor(feedback))


_MASK32 = 0xFFFFFFFF


def counter_uniform(shape, seed, step):
    """U[0, 1) of `shape` as a pure function of (seed, step): a 32-bit integer hash of (element index,
    seed, step) (three multiply–xorshift rounds, murmur3's finaliser shape), its top 24 bits / 2²⁴.

    Integer arithmetic only (int64 holding 32-bit values; every product < 2⁶³), so eager, graph and XLA
    give the same bits, unlike `tf.random.stateless_uniform`, whose kernels differ under XLA.
    """
    size = 1
    for d in shape:
        size *= int(d)
    x = tf.range(size, dtype=tf.int64) + tf.cast(seed, tf.int64) * 0x3C6EF372 + tf.cast(step, tf.int64) * 0x1B873593
    x = tf.bitwise.bitwise_and(x, _MASK32)
    for c in (0x2C1B3C6D, 0x297A2D39, 0x1B873593):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.int64)))
        x = tf.bitwise.bitwise_and(x * c, _MASK32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.int64)))
    u = tf.cast(tf.bitwise.right_shift(x, tf.constant(8, tf.int64)), tf.float32) / float(2**24)
    return tf.reshape(u, tuple(int(d) for d in shape))
