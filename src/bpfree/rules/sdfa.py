"""Sign-error direct feedback alignment, sDFA (Frenkel, Lefebvre, Bol 2021, Front. Neurosci. 15:629892;
the sDFA of the official DRTP code, ChFrenkel/DirectRandomTargetProjection).

DFA with only the sign of the output error: with e = ∂L/∂z (z the output pre-activation; (ŷ − y)/N
for softmax + cross-entropy) and fixed random B_l of shape (units_l, output_dim),
    δ_l = (sign(e) B_lᵀ) ⊙ f'(a_l) / N,   ΔW_l = −η h_{l−1}ᵀ δ_l,
and the output layer gets its ordinary gradient. The official code sends sign(ŷ − y) B per sample;
dividing by the batch size N averages it over the batch like Keras losses (and like dfa and drtp here).
Surrogate, with detached block inputs: J = L + Σ_l Σ stop_gradient(sign(e)/N) ⊙ (h_l B_l).
Alignment as DFA's: W_l ~ B_{l−1} B_lᵀ, W_{L+1} ~ B_L.

On a conv block that pools, ``project_before_pool=True`` projects the map before the pooling (every
position of a window gets its own signal): the official DRTP code, whose sDFA hook sits between the
activation and the max pool. The default, False, projects the pooled map (only each window's maximum
gets a signal), as bpfree's direct rules did before and as biotorch does for DFA. See `bpfree.rules.direct`.
"""

import keras

from bpfree.rules.direct import ProjectedSignalRule
from bpfree.rules.registry import register


@register
class SignDirectFeedbackAlignment(ProjectedSignalRule):
    name = "sdfa"
    summary = "sign direct feedback alignment: the sign of the output error projected to every hidden layer"

    def local_losses(self, forward):
        if not forward.projections:
            return {}
        e = forward.output_error()
        signal = keras.ops.sign(e) / keras.ops.cast(keras.ops.shape(e)[0], e.dtype)
        return {f"sign_error_projection_{l}": keras.ops.sum(signal * p)
                for l, p in enumerate(forward.projections, start=1)}
