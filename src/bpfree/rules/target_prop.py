"""Target propagation through exact inverses on square invertible networks (`bpfree.models.invertible`).

GAIT-prop (Ahmad, van Gerven, Ambrogioni 2020, arXiv 2006.06438), with t_L the output target,
D_l = f'(f⁻¹(h_l)), g_l the exact inverse of layer l and γ = 1e-3:
    τ_L = t_L,  m = 1;  for l = L..1:
        δ_l = m (h_l − τ_l) ⊙ D_l
        τ_{l−1} = g_l(h_l + γ D_l² ⊙ (τ_l − h_l)),   m ← m / γ
Forming τ and subtracting h cancels catastrophically in float32 (the differences shrink as γ^depth).
We propagate the *scaled* difference s_l = (τ_l − h_l) / γ^{L−l} instead, which is exact: g_l is
piecewise linear, so for every unit that does not cross zero
    s_{l−1} = (D_l ⊙ s_l) W_l⁻¹,   δ_l = −D_l ⊙ s_l,
and units that do cross (|h| below γ^{L−l+1}|D² s|) are computed in float64 from the definition.
With orthogonal W (W⁻¹ = Wᵀ) this is exactly backprop's error recursion.

TP (the same paper's baseline): τ_{l−1} = g_l(τ_l) (full, non-incremental inverse),
δ_l = (h_l − τ_l) ⊙ D_l, no rescaling.

BP on the same network (`bp_inv`, the seed's BP baseline): e_L = h_L − t_L, δ_l = e_l ⊙ D_l,
e_{l−1} = δ_l W_lᵀ.

Towers: layer l sees the first k_l units of h_{l−1}; the auxiliary units h_{l−1}[:, k_l:] keep their
own activity as target (TP: τ_{l−1} = [g_l(τ_l), h_{l−1}[:, k_l:]]), i.e. zero error — the scaled
difference and BP's error are zero-padded.
"""

import tensorflow as tf

from bpfree.rules.base import Rule, flag, number
from bpfree.rules.registry import register


class InverseTargetRule(Rule):
    """A rule on an invertible network (`bpfree.models.invertible`): `layer_errors` gives every layer's
    δ_l, and the surrogate Σ_l Σ sg(δ_l) ⊙ a_l / N over detached inputs (a_l the pre-activation) has
    the gradient ∇W_l = h_{l−1}ᵀ δ_l / N, ∇b_l = mean_n δ_l, plus the orthogonal regulariser
    λ Σ_{i≠j} ((W Wᵀ)_ij)² (``orthogonal_reg``); ``orthogonal_init`` starts every W orthogonal."""

    model = "invertible"
    search_values = {"orthogonal_reg": (0.0, 0.1, 1.0), "orthogonal_init": (True, False)}

    def __init__(self, orthogonal_reg=0.0, orthogonal_init=True):
        self.orthogonal_reg = number(self.name, "orthogonal_reg", orthogonal_reg, lambda v: v >= 0,
                                     "a penalty weight ≥ 0")
        self.orthogonal_init = flag(self.name, "orthogonal_init", orthogonal_init)

    def layer_errors(self, model, hs, y):
        """[δ_1, ..., δ_L] (each already multiplied by D_l) from the activities [x, h_1, ..., h_L], in one
        sweep down from the output: `top` starts the rule's signal at the output layer, `down` turns
        layer l's signal into δ_l and the signal of the layer below (None below the first layer)."""
        layers = model.weighted_layers
        signal = self.top(model, hs, y)
        deltas = [None] * len(layers)
        for l in reversed(range(len(layers))):
            deltas[l], signal = self.down(layers[l], hs[l + 1], hs[l], signal, first=l == 0)
        return deltas

    def top(self, model, hs, y):
        raise NotImplementedError

    def down(self, layer, h, below, signal, first):
        raise NotImplementedError

    def local_losses(self, forward):
        model = forward.model
        deltas = self.layer_errors(model, [tf.stop_gradient(h) for h in forward.inputs], forward.y)
        n = tf.cast(forward.batch_size, forward.x.dtype)
        terms = [tf.reduce_sum(tf.stop_gradient(tf.cast(d, a.dtype)) * a) for d, a in zip(deltas, forward.preactivations)]
        losses = {"layer_errors": tf.add_n(terms) / n}
        if self.orthogonal_reg:
            losses["orthogonal_penalty"] = self.orthogonal_penalty(model)
        return losses

    def orthogonal_penalty(self, model):
        """λ Σ_l Σ_{i≠j} ((W_l W_lᵀ)_ij)²; 0 when λ = 0."""
        if not self.orthogonal_reg:
            return 0.0
        total = 0.0
        for layer in model.weighted_layers:
            gram = tf.matmul(layer.kernel, layer.kernel, transpose_b=True)
            total += tf.reduce_sum(tf.square(gram - tf.linalg.diag(tf.linalg.diag_part(gram))))
        return self.orthogonal_reg * total


@register
class GaitProp(InverseTargetRule):
    name = "gait"
    summary = "GAIT-prop: incremental targets through exact inverses (invertible networks)"
    search_values = {**InverseTargetRule.search_values, "gamma": (1e-4, 1e-3, 1e-2)}

    def __init__(self, orthogonal_reg=0.0, orthogonal_init=True, gamma=1e-3):
        super().__init__(orthogonal_reg=orthogonal_reg, orthogonal_init=orthogonal_init)
        self.gamma = number(self.name, "gamma", gamma, lambda v: 0 < v <= 1, "an incremental step in (0, 1]")

    def top(self, model, hs, y):
        """(s_L, γ^0): the scaled difference t_L − h_L and its scale."""
        h_out = tf.cast(hs[-1], tf.float64)
        return tf.cast(model.output_target(hs[-1], y), tf.float64) - h_out, tf.constant(1.0, tf.float64)

    def down(self, layer, h, below, signal, first):
        s, scale = signal  # scale = γ^{L−l}
        h = tf.cast(h, tf.float64)
        d = layer.derivative(h)
        if first:
            return -d * s, None
        # Units whose incremental target crosses zero: the definition, in float64.
        gamma = tf.constant(self.gamma, tf.float64)
        step = gamma * scale * d * d * s  # the true increment γ D² (τ_l − h_l)
        exact = (layer.activation_inverse(h + step) - layer.activation_inverse(h)) / (gamma * scale)
        crossing = tf.not_equal(h + step >= 0, h >= 0)
        q = tf.where(crossing, exact, d * s)
        return -d * s, (_pad_to(tf.matmul(q, layer.kernel_inverse()), below), scale * gamma)


@register
class TargetPropagation(InverseTargetRule):
    name = "tp"
    summary = "target propagation through exact inverses (invertible networks)"

    def top(self, model, hs, y):
        """τ_L = t_L."""
        return tf.cast(model.output_target(hs[-1], y), tf.float64)

    def down(self, layer, h, below, tau, first):
        h = tf.cast(h, tf.float64)
        delta = (h - tau) * layer.derivative(h)
        if first:
            return delta, None
        below = tf.cast(below, tf.float64)
        return delta, tf.concat([layer.inverse(tau), below[:, layer.units:]], axis=1)


@register
class InvertibleBackprop(InverseTargetRule):
    name = "bp_inv"
    summary = "backpropagation on the invertible network (the GAIT-prop seed's BP baseline)"

    def top(self, model, hs, y):
        """e_L = h_L − t_L."""
        return hs[-1] - model.output_target(hs[-1], y)

    def down(self, layer, h, below, e, first):
        delta = e * layer.derivative(h)
        return delta, None if first else _pad_to(tf.matmul(delta, layer.kernel, transpose_b=True), below)


def _pad_to(s, h):
    """`s` (batch × k) zero-padded on the right to the width of `h` (a tower's auxiliary units)."""
    extra = tf.shape(h)[1] - tf.shape(s)[1]
    return tf.pad(s, [[0, 0], [0, extra]])
