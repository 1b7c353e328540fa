"""Target propagation through op-by-op inverses of the forward layers (the `jsseely/tensorflow-target-prop`
seed's err_alg 1 and 2), on ordinary feedforward networks.

With the notation and the top target t_{L+1} = z − α_t N ∂L/∂z of `bpfree.rules.layer_targets`, each
layer l = L+1, ..., 2 is undone one op at a time, from its output target back to a target for its
input h_{l−1}: the activation (hidden layers only; layer L+1 is affine and its target is on z), then
the bias, then the matrix product. Targets are computed in float64.

``tp_lsq`` (err_alg 1, "essentially op-by-op DTP"): the clipped exact inverse of the activation, then
the least-squares inverse that changes the input least:
    t^a_l = σ⁻¹(t_l; a_l),   t_{l−1} = h_{l−1} + ((t^a_l − b_l) − h_{l−1} W_l) W_l⁺,
W⁺ the Moore–Penrose pseudo-inverse: among all inputs x minimising ‖x W_l − (t^a_l − b_l)‖ it is the
one nearest h_{l−1}. σ⁻¹: tanh → atanh(clip(t, −0.99, 0.99)); sigmoid → logit(clip(t, 0.01, 0.99));
relu → t if t > 0, else 0 if a ≥ 0, else a (keep a dead unit's pre-activation); lrelu (slope 0.2) →
t if t > 0, else t / 0.2 (exact); linear → t.

``tp_rinv`` (err_alg 2): every op y = f(x) is undone by the regularised inverse around its current
input x0, argmin_x ‖f(x) − t‖² + γ‖x − x0‖², in closed form where one exists:
    product x W:   x = (t Wᵀ + γ x0)(W Wᵀ + γ I)⁻¹        (x0 = h_{l−1})
    bias x + b:    x = (t − b + γ x0) / (1 + γ)            (x0 = h_{l−1} W_l)
    linear σ:      x = (t + γ x0) / (1 + γ)
    relu, lrelu:   the better of the two half-line minimisers, max((t + γ x0)/(1 + γ), 0) and
                   min((s t + γ x0)/(s² + γ), 0), s the negative slope (0 for relu); exact
    tanh, sigmoid: ``num_steps_rinv`` gradient steps x ← x − lr ∇_x[(σ(x) − t)² + γ(x − x0)²] with
                   lr = ``lr_rinv``, from the clipped exact inverse above (unrolled in the train step's graph)
(x0 = a_l for the activation). The seed returns t for the linear activation and the exact inverse for
lrelu; we use the argmin, which the definition asks for. It averages its tanh/sigmoid GD objective over
batch × units, which makes lr_rinv act as lr_rinv / (N n); the problem is separable, so we step each
element on its own objective and lr_rinv does not depend on the batch or the width.

Activations without an inverse here (swish) are refused, and so are batch norm and dropout.
"""

import tensorflow as tf

from bpfree import checks
from bpfree.rules.base import number, whole
from bpfree.rules.layer_targets import LayerTargetRule
from bpfree.rules.registry import register

INVERTIBLE_ACTIVATIONS = ("tanh", "sigmoid", "relu", "lrelu", "linear")
CLIP = 0.01  # the seed's margin: tanh targets in [−1 + CLIP, 1 − CLIP], sigmoid targets in [CLIP, 1 − CLIP]
LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's negative slope (bpfree's "lrelu")


def activation_inverse(t, a, activation):
    """σ⁻¹(t): the clipped exact inverse of the activation; `a` is the current pre-activation (relu)."""
    checks.choice("activation", activation, INVERTIBLE_ACTIVATIONS, label="No inverse of the")
    if activation == "tanh":
        return tf.atanh(tf.clip_by_value(t, -1.0 + CLIP, 1.0 - CLIP))
    if activation == "sigmoid":
        t = tf.clip_by_value(t, CLIP, 1.0 - CLIP)
        return tf.math.log(t) - tf.math.log1p(-t)
    if activation == "relu":
        return tf.where(t > 0, t, tf.where(a >= 0, tf.zeros_like(t), a))
    if activation == "lrelu":
        return tf.where(t > 0, t, t / LEAKY_SLOPE)
    return t  # linear


def lsq_linear_inverse(y, x0, kernel):
    """x0 + (y − x0 W) W⁺: the least-squares solution of x W ≈ y with the least change from x0."""
    return x0 + tf.matmul(y - tf.matmul(x0, kernel), tf.linalg.pinv(kernel))


def rinv_linear(y, x0, kernel, gamma):
    """argmin_x ‖x W − y‖² + γ‖x − x0‖² = (y Wᵀ + γ x0)(W Wᵀ + γ I)⁻¹ (a Cholesky solve)."""
    gram = tf.matmul(kernel, kernel, transpose_b=True) + gamma * tf.eye(tf.shape(kernel)[0], dtype=kernel.dtype)
    rhs = tf.matmul(y, kernel, transpose_b=True) + gamma * x0
    return tf.transpose(tf.linalg.cholesky_solve(tf.linalg.cholesky(gram), tf.transpose(rhs)))


def rinv_bias(y, bias, x0, gamma):
    """argmin_x ‖x + b − y‖² + γ‖x − x0‖² = (y − b + γ x0) / (1 + γ)."""
    return (y - bias + gamma * x0) / (1.0 + gamma)


def rinv_activation(y, x0, activation, gamma, num_steps=2, lr=0.1):
    """argmin_x ‖σ(x) − y‖² + γ‖x − x0‖², elementwise: closed forms for linear/relu/lrelu, gradient
    descent from the clipped exact inverse for tanh/sigmoid."""
    if activation == "linear":
        return (y + gamma * x0) / (1.0 + gamma)
    if activation in ("relu", "lrelu"):
        s = LEAKY_SLOPE if activation == "lrelu" else 0.0
        positive = tf.maximum((y + gamma * x0) / (1.0 + gamma), 0.0)
        negative = tf.minimum((s * y + gamma * x0) / (s * s + gamma), 0.0)

        def cost(x):
            return tf.square(tf.where(x > 0, x, s * x) - y) + gamma * tf.square(x - x0)

        return tf.where(cost(positive) <= cost(negative), positive, negative)
    x = activation_inverse(y, x0, activation)
    for _ in range(num_steps):
        f = tf.tanh(x) if activation == "tanh" else tf.sigmoid(x)
        fprime = 1.0 - f * f if activation == "tanh" else f * (1.0 - f)
        x = x - lr * (2.0 * (f - y) * fprime + 2.0 * gamma * (x - x0))
    return x


def rinv_objective(x, y, x0, activation, gamma):
    """(σ(x) − y)² + γ(x − x0)², elementwise (what `rinv_activation` minimises)."""
    f = {"tanh": tf.tanh, "sigmoid": tf.sigmoid}.get(activation, lambda v: v)(x)
    return tf.square(f - y) + gamma * tf.square(x - x0)


class OpByOpInverseRule(LayerTargetRule):
    """Targets through inverses of each layer's ops (activation, bias, product), in float64."""

    activations = INVERTIBLE_ACTIVATIONS

    def targets(self, forward):
        model = forward.model
        config = model.network_config

        def f64(v):
            return tf.cast(tf.stop_gradient(v), tf.float64)

        inputs = [f64(h) for h in forward.inputs]  # h_0, ..., h_L
        preactivations = [f64(a) for a in forward.preactivations]  # a_1, ..., a_L
        layers = model.weighted_layers
        t = f64(self.top_target(forward))
        targets = [t]
        for l in range(len(layers), 1, -1):
            layer = layers[l - 1]
            if l <= len(model.blocks):
                t = self.invert_activation(t, preactivations[l - 1], config)
            bias = f64(layer.bias) if layer.bias is not None else None
            t = self.invert_affine(t, inputs[l - 1], f64(layer.kernel), bias, config)
            targets.insert(0, t)
        return [tf.cast(t, forward.z.dtype) for t in targets]

    def invert_activation(self, t, a, config):
        raise NotImplementedError

    def invert_affine(self, t, x0, kernel, bias, config):
        raise NotImplementedError


@register
class LeastSquaresTargetPropagation(OpByOpInverseRule):
    name = "tp_lsq"
    summary = "target propagation through op-by-op least-squares inverses (pseudo-inverse of each kernel)"

    def invert_activation(self, t, a, config):
        return activation_inverse(t, a, config.activation)

    def invert_affine(self, t, x0, kernel, bias, config):
        return lsq_linear_inverse(t - bias if bias is not None else t, x0, kernel)


@register
class RegularisedInverseTargetPropagation(OpByOpInverseRule):
    name = "tp_rinv"
    summary = "target propagation through op-by-op regularised inverses argmin ‖f(x) − t‖² + γ‖x − x0‖²"
    search_values = {**LayerTargetRule.search_values, "gamma": (1e-6, 1e-3, 1e-1, 1.0), "num_steps_rinv": (0, 1, 2, 4),
                     "lr_rinv": (0.01, 0.1, 1.0)}

    def __init__(self, alpha_t=0.1, gamma=1e-3, num_steps_rinv=2, lr_rinv=0.1):
        super().__init__(alpha_t=alpha_t)
        self.gamma = number(self.name, "gamma", gamma, lambda v: v > 0, "a number > 0")
        self.num_steps_rinv = whole(self.name, "num_steps_rinv", num_steps_rinv, lambda v: v >= 0, "an integer ≥ 0")
        self.lr_rinv = number(self.name, "lr_rinv", lr_rinv, lambda v: v > 0, "a number > 0")

    def invert_activation(self, t, a, config):
        return rinv_activation(t, a, config.activation, self.gamma, num_steps=self.num_steps_rinv, lr=self.lr_rinv)

    def invert_affine(self, t, x0, kernel, bias, config):
        gamma = self.gamma
        if bias is not None:
            t = rinv_bias(t, bias, tf.matmul(x0, kernel), gamma)
        return rinv_linear(t, x0, kernel, gamma)
