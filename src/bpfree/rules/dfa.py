"""Direct feedback alignment (Nøkland 2016, NeurIPS, arXiv 1609.01596).

The output error e = ∂L/∂z (z the output pre-activation; (ŷ − y)/N for softmax + cross-entropy
averaged over a batch of N) is sent straight to every hidden layer through a fixed random B_l of shape
(units_l, output_dim):
    δ_l = (e B_lᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l,
and the output layer gets its ordinary gradient. Surrogate: with detached block inputs,
    J = L + Σ_l Σ stop_gradient(e) ⊙ (h_l B_l),
where e is not computed separately: `broadcast_output_error` returns z + s − stop_gradient(s) with
s = Σ_l p_l, p_l = h_l B_l. Its value is exactly z (s − s = 0), and its gradient hands ∂L/∂z to every
projection, so the single gradient call of the train step delivers e B_lᵀ to h_l for whatever loss
the model was compiled with. (A `tf.custom_gradient` identity does the same but measured ~8 % slower
under XLA: it blocks fusion.)

On a conv block that pools, ``project_before_pool`` chooses what B_l projects: False (the default) the
pooled map, so only each max-pooling window's maximum receives e B_lᵀ (biotorch's DFA on conv nets);
True the map before the pooling, every position getting its own signal (the official DRTP code's DFA
mode, whose hook sits between the activation and the max pool). `bpfree.rules.direct` says more.
"""

import keras

from bpfree.rules.direct import ProjectedSignalRule
from bpfree.rules.registry import register


@register
class DirectFeedbackAlignment(ProjectedSignalRule):
    name = "dfa"
    summary = "direct feedback alignment: the output error projected to every hidden layer"

    def output_preactivation(self, z, projections):
        return broadcast_output_error(z, projections) if projections else z


def broadcast_output_error(z, projections):
    """Equals `z`; in the backward pass every projection receives the gradient that z receives."""
    s = projections[0]
    for p in projections[1:]:
        s = s + p
    return z + (s - keras.ops.stop_gradient(s))
