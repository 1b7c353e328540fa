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

`FeedbackAlignmentConv2D` (layers/conv.py) is the same for a convolution: ∂/∂x is the transposed
convolution of δ with B, a kernel of W's shape (k, k, C_in, C_out), instead of with W.

`FeedbackAlignmentDense(..., backward=...)` (and the conv layer's) chooses the B of the backward pass
(the one option that Kolen–Pollack and the sign-concordant rules add; B has the kernel's shape,
(fan_in, fan_out) for a dense layer; fans as Glorot counts them for a convolution):
- ``"fixed"``: B, fixed random (feedback alignment; the default).
- ``"learned"``: B trainable, and its gradient is the kernel's, xᵀ δ (Kolen–Pollack: ΔB = ΔW).
- ``"sign"``: B = sign(W)·s, s = √(2/(fan_in + fan_out)), the std of the Glorot init (uSF).
- ``"random_sign"``: B = |R| ⊙ sign(W), R fixed random, kept in ``feedback`` (frSF).
- ``"batch_random_sign"``: B = |R_t| ⊙ sign(W), R_t ~ U(±√(6/(fan_in + fan_out))) drawn afresh at every
  training call t by `counter_uniform` from (feedback_seed, t), the same bits in eager, graph and
  XLA modes; t is a counter saved with the layer (brSF).
"""

import math
import random

import keras
import tensorflow as tf

from bpfree import checks

from bpfree.layers.own_variables import SavesOwnVariables

BW_INITS = ("ortho", "lecun", "uniform", "gaussian", "xavier")
BACKWARDS = ("fixed", "learned", "sign", "random_sign", "batch_random_sign")


def feedback_initializer(name, seed):
    """The initializer of fixed feedback matrices called `name`, seeded with `seed`.

    - ``ortho``: a random (semi-)orthogonal matrix (`keras.initializers.Orthogonal`).
    - ``lecun``: N(0, 1/fan_in) truncated (`LecunNormal`).
    - ``uniform``: U(±√(6/fan_in)) (`HeUniform`, the Kaiming-uniform init of the DRTP code).
    - ``gaussian``: N(0, 1/fan_in), not truncated.
    - ``xavier``: U(±√(6/(fan_in + fan_out))) (`GlorotUniform`; the fans of a conv kernel (k, k, C_in, C_out)
      are k²C_in and k²C_out, as PyTorch's xavier_uniform_ counts them: biotorch's init of feedback weights).
    """
    checks.choice("bw_init", name, BW_INITS)
    if name == "ortho":
        return keras.initializers.Orthogonal(seed=seed)
    if name == "lecun":
        return keras.initializers.LecunNormal(seed=seed)
    if name == "uniform":
        return keras.initializers.HeUniform(seed=seed)
    if name == "xavier":
        return keras.initializers.GlorotUniform(seed=seed)
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="untruncated_normal", seed=seed)


@keras.saving.register_keras_serializable(package="bpfree")
class FeedbackProjection(keras.layers.Layer):
    """p = h B with a fixed random B of shape (input features, `output_dim`).

    A feature map h (N, H, W, C) is flattened first, after a fixed ``pool``×``pool`` average pooling
    (window = stride = ``pool``, 'same' padding) when ``pool`` > 1: B then has
    ⌈H/pool⌉·⌈W/pool⌉·C rows instead of H·W·C, ``pool``² times less memory (the full matrices of a
    VGG's first layers are what runs DRTP out of memory).
    """

    def __init__(self, output_dim, bw_init="ortho", seed=None, pool=1, **kwargs):
        super().__init__(**kwargs)
        feedback_initializer(bw_init, seed)  # validates the name early
        self.output_dim = int(output_dim)
        self.bw_init = bw_init
        self.seed = seed
        self.pool = int(pool)

    def _pooled(self, inputs):
        if self.pool > 1 and len(inputs.shape) == 4:
            inputs = keras.ops.average_pool(inputs, self.pool, strides=self.pool, padding="same")
        return flatten(inputs) if len(inputs.shape) > 2 else inputs

    def features(self, input_shape):
        """The rows of B for inputs of `input_shape` (batch first)."""
        shape = tuple(input_shape[1:])
        if self.pool > 1 and len(shape) == 3:
            shape = (-(-shape[0] // self.pool), -(-shape[1] // self.pool), shape[2])
        return math.prod(shape)

    def build(self, input_shape):
        self.feedback = self.add_weight(
            name="feedback",
            shape=(self.features(input_shape), self.output_dim),
            initializer=feedback_initializer(self.bw_init, self.seed),
            trainable=False,
        )

    def call(self, inputs):
        return keras.ops.matmul(self._pooled(inputs), self.feedback)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = {**super().get_config(), "output_dim": self.output_dim, "bw_init": self.bw_init, "seed": self.seed}
        if self.pool != 1:
            config["pool"] = self.pool
        return config


class AlternativeBackward(SavesOwnVariables):
    """Mixin for a weighted layer (Dense, Conv2D) that sends errors down through another kernel B than
    its own W (the module docstring lists the ``backward`` options). The subclass supplies the forward
    operation and its two vector–Jacobian products:
        ``_forward(x, k)``, ``_input_gradient(x, B, δ)`` (δ ∂/∂x of the op with kernel B),
        ``_kernel_gradient(x, k, δ)`` (δ ∂/∂k),
    and this mixin wires them as ∂/∂x = vjp_x(B, δ), ∂/∂W = vjp_W(x, δ) (and ∂/∂B = ∂/∂W for
    ``"learned"``). B always has the kernel's shape.
    """

    def _init_backward(self, bw_init, feedback_seed, backward):
        feedback_initializer(bw_init, feedback_seed)
        self.backward = checks.choice("backward", backward, BACKWARDS)
        if backward == "batch_random_sign" and feedback_seed is None:
            feedback_seed = random.SystemRandom().randrange(2**31 - 1)  # recorded in the config
        self.bw_init = bw_init
        self.feedback_seed = feedback_seed
        self.feedback = None
        self.feedback_step = None

    def _build_backward(self):
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
    def fans(self):
        """(fan_in, fan_out) of the kernel, as Glorot counts them: (k·k·C_in, k·k·C_out) for a
        k×k convolution, (inputs, units) for a dense kernel."""
        shape = [int(d) for d in self.kernel.shape]
        receptive = 1
        for d in shape[:-2]:
            receptive *= d
        return receptive * shape[-2], receptive * shape[-1]

    @property
    def sign_scale(self):
        """s = √(2/(fan_in + fan_out)): the scale of uSF's B = sign(W)·s, and the std of R (brSF)."""
        fan_in, fan_out = self.fans
        return (2.0 / (fan_in + fan_out)) ** 0.5

    def random_magnitudes(self, step):
        """R_t of ``batch_random_sign``: U(±√3·s), a counter-based draw from (feedback_seed, t)."""
        limit = 3.0**0.5 * self.sign_scale
        u = counter_uniform(self.kernel.shape, self.feedback_seed, step)
        return keras.ops.cast(limit * (2.0 * u - 1.0), self.kernel.dtype)

    def backward_kernel(self, step=None):
        """B at this call (for the sign rules a function of the current W; ``step``: brSF's draw)."""
        if self.backward in ("fixed", "learned"):
            return self.feedback
        sign = tf.sign(tf.stop_gradient(tf.convert_to_tensor(self.kernel)))
        if self.backward == "sign":
            return sign * self.sign_scale
        if self.backward == "random_sign":
            return tf.abs(self.feedback) * sign
        return tf.abs(self.random_magnitudes(self.feedback_step if step is None else step)) * sign

    def call(self, inputs, training=None, feedback=True):
        step = None
        if self.backward == "batch_random_sign" and training:
            # One draw per training call, with or without the rule's wiring (so that a replayed
            # backprop pass for the bp_cosine tracker advances the counter exactly as the rule's does).
            step = tf.identity(self.feedback_step)
            self.feedback_step.assign_add(1)
        if not feedback:
            return super().call(inputs)
        outputs = self._alternative_backward(inputs, self.backward_kernel(step))
        if self.bias is not None:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _alternative_backward(self, x, feedback):
        # tf.custom_gradient rather than keras.ops.custom_gradient: the kernel is a variable read inside
        # the function, and TF's version hands us the gradients for captured variables explicitly.
        learned = self.backward == "learned"

        @tf.custom_gradient
        def op(x, kernel, *trained_feedback):
            def grad(upstream):
                kernel_grad = self._kernel_gradient(x, kernel, upstream)
                input_grad = self._input_gradient(x, feedback, upstream)
                return (input_grad, kernel_grad, kernel_grad) if learned else (input_grad, kernel_grad)

            return self._forward(x, kernel), grad

        kernel = tf.convert_to_tensor(self.kernel)
        if learned:
            feedback = tf.convert_to_tensor(feedback)
            return op(x, kernel, feedback)
        return op(x, kernel)

    # Keras's own (de)serialisation knows only kernel and bias (and quantisation variables); the
    # feedback matrix (fa, kp, frsf) or the draw counter (brsf) must travel with them.
    def _saved_variables(self):
        return [v for v in (self.kernel, self.bias, self.feedback, self.feedback_step) if v is not None]

    def _backward_config(self):
        config = {"bw_init": self.bw_init, "feedback_seed": self.feedback_seed}
        if self.backward != "fixed":  # feedback alignment's config stays what it was
            config["backward"] = self.backward
        return config


@keras.saving.register_keras_serializable(package="bpfree")
class FeedbackAlignmentDense(AlternativeBackward, keras.layers.Dense):
    """A Dense layer that sends errors down through another matrix B than its kernel (the module
    docstring lists the ``backward`` options; ``"fixed"``, a fixed random B, is feedback alignment):
    for a = x W + b, ∂/∂W = xᵀ δ, ∂/∂x = δ Bᵀ.

    Call with ``feedback=False`` for the true gradient (used by the `bp_cosine` tracker).
    """

    def __init__(self, units, bw_init="ortho", feedback_seed=None, backward="fixed", **kwargs):
        super().__init__(units, **kwargs)
        self._init_backward(bw_init, feedback_seed, backward)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_backward()

    @staticmethod
    def _forward(x, kernel):
        return tf.matmul(x, kernel)

    @staticmethod
    def _input_gradient(x, feedback, upstream):
        return tf.matmul(upstream, feedback, transpose_b=True)

    @staticmethod
    def _kernel_gradient(x, kernel, upstream):
        return tf.matmul(x, upstream, transpose_a=True)

    def get_config(self):
        return {**super().get_config(), **self._backward_config()}


def call_dense(layer, inputs, feedback=True, training=None):
    """`layer(inputs)`, wired for the rule's backward pass when ``feedback`` (layers with feedback weights:
    dense or convolutional). ``training`` reaches the layer explicitly: brSF draws its B once per training
    call, and a layer called outside any Keras layer call (the output layer) would not see it otherwise."""
    if len(inputs.shape) > 2 and len(layer.kernel.shape) == 2:  # a feature map entering a dense layer
        inputs = flatten(inputs)
    if isinstance(layer, AlternativeBackward):
        return layer(inputs, training=training, feedback=feedback)
    return layer(inputs)


def flatten(h):
    """(N, H, W, C) → (N, H·W·C)."""
    return keras.ops.reshape(h, (-1, math.prod(h.shape[1:])))


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
