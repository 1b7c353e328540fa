"""Uniform sign-concordant feedback, uSF (Liao, Leibo, Poggio 2016, AAAI, arXiv 1510.05067).

The error travels down through the signs of the forward weights, at their current values:
    B_l = sign(W_l) · s_l,   s_l = √(2/(fan_in + fan_out)),
    δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
s_l is biotorch's scale (jsalbert/biotorch, `layers/fa_constructor`): the standard deviation of the
Glorot (Xavier) init of the kernels, which keeps the backward signal at the forward weights' scale
(Xiao et al. 2018, arXiv 1811.03567). B has no state: it is recomputed from W at every step.
Surrogate: the global loss, every Dense above the first a `FeedbackAlignmentDense(backward="sign")`.
Alignment target: B_l itself, sign(W_l)·s_l (cos(W, sign W) = ‖W‖₁ / (√n ‖W‖₂)).
"""

import keras

from bpfree.rules.fa import FeedbackAlignment
from bpfree.rules.registry import register


@register
class UniformSignFeedback(FeedbackAlignment):
    name = "usf"
    summary = "uniform sign-concordant feedback: errors sent down through sign(W) · scale"
    backward = "sign"

    def alignment_targets(self, model):
        return self.per_layer(model, lambda layer: keras.ops.sign(layer.kernel) * layer.sign_scale)
