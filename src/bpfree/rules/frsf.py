"""Fixed random-magnitude sign-concordant feedback, frSF (Liao, Leibo, Poggio 2016, AAAI, arXiv 1510.05067;
biotorch's frSF, jsalbert/biotorch).

The backward matrix has the signs of the current forward weights and fixed random magnitudes:
    B_l = |R_l| ⊙ sign(W_l),   R_l fixed (drawn once with the network's ``bw_init`` from the seed of
    layer l's feedback matrix, like feedback alignment's B_l),
    δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
Surrogate: the global loss, every Dense above the first a `FeedbackAlignmentDense(backward="random_sign")`
(R is its non-trainable ``feedback`` weight, saved with the model). Alignment target: B_l = |R_l| ⊙ sign(W_l).
"""

import keras

from bpfree.rules.registry import register
from bpfree.rules.usf import UniformSignFeedback


@register
class FixedRandomSignFeedback(UniformSignFeedback):
    name = "frsf"
    summary = "fixed random-magnitude sign-concordant feedback: errors sent down through |R| ⊙ sign(W)"
    backward = "random_sign"

    def alignment_targets(self, model):
        return self.per_layer(model, lambda layer: keras.ops.abs(layer.feedback) * keras.ops.sign(layer.kernel))
