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

from bpfree.rules.base import LearningRule, register


class InverseTargetRule(LearningRule):
    extra_hparams = {"orthogonal_reg": (0.0, (0.0, 0.1, 1.0)), "orthogonal_init": (True, (True, False))}
    hparam_checks = {"orthogonal_reg": (lambda v: v >= 0, "a penalty weight ≥ 0")}  # bpfree.tuning.validation

    def validate_point(self, point, config, input_dim, output_dim):
        """Refuses a grid point this rule cannot train, before the search starts."""
        from bpfree.models.invertible import validate

        validate(self.name, point["arch"], input_dim, output_dim, activation=point["activation"],
                 batchnorm=point["batchnorm"], dropout=point["dropout"], use_bias=config.use_bias,
                 weight_decay=config.weight_decay, problem_type=config.problem_type, trackers=config.trackers)

    def build_model(self, arch, input_dim, output_dim, **options):
        from bpfree.models.invertible import InvertibleNetwork

        options.pop("init_fw_weight_aligned", None)
        options.pop("output_activation", None)
        return InvertibleNetwork(self.name, arch, input_dim, output_dim, **options)


@register
class GaitProp(InverseTargetRule):
    name = "gait"
    summary = "GAIT-prop: incremental targets through exact inverses (invertible networks)"

    def layer_errors(self, model, hs, y):
        layers = model.inv_layers
        h_out = tf.cast(hs[-1], tf.float64)
        s = tf.cast(model.output_target(hs[-1], y), tf.float64) - h_out  # s_L = t_L − h_L
        gamma = tf.constant(model.gamma, tf.float64)
        deltas = [None] * len(layers)
        scale = tf.constant(1.0, tf.float64)  # γ^{L−l}
        for l in reversed(range(len(layers))):
            layer, h = layers[l], tf.cast(hs[l + 1], tf.float64)
            d = layer.derivative(h)
            deltas[l] = -d * s
            if l == 0:
                break
            # Units whose incremental target crosses zero: the definition, in float64.
            step = gamma * scale * d * d * s  # the true increment γ D² (τ_l − h_l)
            exact = (layer.activation_inverse(h + step) - layer.activation_inverse(h)) / (gamma * scale)
            crossing = tf.not_equal(h + step >= 0, h >= 0)
            q = tf.where(crossing, exact, d * s)
            s = _pad_to(tf.matmul(q, layer.kernel_inverse()), hs[l])
            scale = scale * gamma
        return deltas


@register
class TargetPropagation(InverseTargetRule):
    name = "tp"
    summary = "target propagation through exact inverses (invertible networks)"

    def layer_errors(self, model, hs, y):
        layers = model.inv_layers
        tau = tf.cast(model.output_target(hs[-1], y), tf.float64)
        deltas = [None] * len(layers)
        for l in reversed(range(len(layers))):
            h = tf.cast(hs[l + 1], tf.float64)
            deltas[l] = (h - tau) * layers[l].derivative(h)
            if l:
                below = tf.cast(hs[l], tf.float64)
                tau = tf.concat([layers[l].inverse(tau), below[:, layers[l].units:]], axis=1)
        return deltas


@register
class InvertibleBackprop(InverseTargetRule):
    name = "bp_inv"
    summary = "backpropagation on the invertible network (the GAIT-prop seed's BP baseline)"

    def layer_errors(self, model, hs, y):
        layers = model.inv_layers
        e = hs[-1] - model.output_target(hs[-1], y)
        deltas = [None] * len(layers)
        for l in reversed(range(len(layers))):
            deltas[l] = e * layers[l].derivative(hs[l + 1])
            if l:
                e = _pad_to(tf.matmul(deltas[l], layers[l].kernel, transpose_b=True), hs[l])
        return deltas


def _pad_to(s, h):
    """`s` (batch × k) zero-padded on the right to the width of `h` (a tower's auxiliary units)."""
    extra = tf.shape(h)[1] - tf.shape(s)[1]
    return tf.pad(s, [[0, 0], [0, extra]])
