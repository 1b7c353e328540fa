"""Difference target propagation (Lee, Zhang, Fischer, Bengio 2015, ECML-PKDD, arXiv 1412.7525), as in
the `jsseely/tensorflow-target-prop` seed (err_alg 3).

Every layer l above the first has a learned inverse g_l(h) = σ(h V_l + c_l) from its output space back
to its input space (`bpfree.layers.LearnedInverse`; V_l orthogonal with gain 0.95, c_l = 0), σ the
hidden activation. With the notation and the top target t_{L+1} = z − α_t N ∂L/∂z of
`bpfree.rules.layer_targets`, targets come down with the difference correction:
    t_{l−1} = h_{l−1} + g_l(t_l) − g_l(h_l),     l = L+1, ..., 2,
so t_{l−1} = h_{l−1} exactly whenever t_l = h_l, however poor g_l is (computed as h + (g(t) − g(h)),
so that equality is exact in floating point too). The inverses are g_2..g_L (hidden layers above the
first) and g_{L+1} (the output layer: z → h_L, the top target being on z); the first layer needs none.

Each inverse learns to undo its forward layer on noisy inputs, with the forward weights detached:
    L_inv,l = ½ mean((g_l(f_l(h_{l−1} + ε)) − (h_{l−1} + ε))²),   ε ~ N(0, σ_t²),   σ_t = noise / (1 + t/100),
f_l(u) = σ(u W_l + b_l) for hidden l and the affine u W_{L+1} + b_{L+1} for the output layer (the seed
applies σ there too; its real top layer is affine), t the optimizer's iteration count (the seed's
schedule), noise the ``inverse_noise`` hparam. The surrogate objective is
    J = L + Σ_{l=1..L} ½ mean((h_l − sg(t_l))²) + Σ_{l=2..L+1} L_inv,l,
one gradient, one optimizer step: V_l, c_l move only by L_inv,l, the forward weights only by their
own terms (the seed updates V before W within a step; here both use the same step's values, and they
share the optimizer and its learning rate, where the seed has a separate lr_inv).
Metrics: ``target_loss_l`` (l = 1..L) and ``inverse_loss_l`` (l = 2..L+1), every step.
"""

import keras

from bpfree import seeds
from bpfree.layers import LearnedInverse, activation_function
from bpfree.rules.base import number
from bpfree.rules.layer_targets import LayerTargetRule
from bpfree.rules.registry import register


@register
class DifferenceTargetPropagation(LayerTargetRule):
    name = "dtp"
    summary = "difference target propagation: targets through learned inverses with the difference correction"
    search_values = {**LayerTargetRule.search_values, "inverse_noise": (0.0, 0.01, 0.1, 1.0)}

    def __init__(self, alpha_t=0.1, inverse_noise=0.1):
        super().__init__(alpha_t=alpha_t)
        self.inverse_noise = number(self.name, "inverse_noise", inverse_noise, lambda v: v >= 0,
                                    "a standard deviation ≥ 0")

    def build_layers(self, config):
        """[g_2, ..., g_{L+1}]: g_l maps n_l units back to n_{l−1}."""
        widths = (config.input_dim, *config.arch, config.output_dim)
        inverses = []
        for l in range(2, len(widths)):
            g = LearnedInverse(widths[l - 1], activation=config.activation,
                               seed=seeds.inverse(config.seed, l), name=f"inverse_{l}")
            g.build((None, widths[l]))
            inverses.append(g)
        return inverses

    def targets(self, forward):
        inverses = forward.model.rule_layers
        outputs = [keras.ops.stop_gradient(h) for h in forward.hidden + [forward.z]]  # of layers 1..L+1
        t = self.top_target(forward)
        targets = [t]
        for l in range(len(outputs), 1, -1):
            g = inverses[l - 2]
            t = outputs[l - 2] + (g(t) - g(outputs[l - 1]))
            targets.insert(0, keras.ops.stop_gradient(t))
        return targets

    def local_losses(self, forward):
        losses = super().local_losses(forward)
        model = forward.model
        config = model.network_config
        sigma = keras.activations.get(activation_function(config.activation))
        step = keras.ops.cast(model.optimizer.iterations, "float32") if model.optimizer is not None else 0.0
        stddev = self.inverse_noise / (1.0 + step / 100.0)
        n_hidden = len(model.blocks)
        for l, (g, layer) in enumerate(zip(model.rule_layers, model.weighted_layers[1:]), start=2):
            h = keras.ops.stop_gradient(forward.inputs[l - 1])
            u = h + g.noise(keras.ops.shape(h), stddev, dtype=h.dtype)
            a = keras.ops.matmul(u, keras.ops.stop_gradient(layer.kernel))
            if layer.bias is not None:
                a = a + keras.ops.stop_gradient(layer.bias)
            f = sigma(a) if l <= n_hidden else a
            losses[f"inverse_loss_{l}"] = 0.5 * keras.ops.mean(keras.ops.square(g(f) - u))
        return losses

    def reported_losses(self, config):
        return super().reported_losses(config) + tuple(f"inverse_loss_{l}" for l in range(2, len(config.arch) + 2))
