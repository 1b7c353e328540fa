"""Feedback alignment (Lillicrap, Cownden, Tweed, Akerman 2016, Nat. Commun. 7:13276).

The error travels down through fixed random matrices B_l with the shapes of the kernels, instead of
the transposed forward weights:
    δ_L = ∂L/∂a_L,   δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
The surrogate objective is the global loss with nothing detached; every Dense above the first is a
`FeedbackAlignmentDense`, whose custom gradient sends δ Bᵀ to its input.
"""

from bpfree.rules.base import LearningRule, register


@register
class FeedbackAlignment(LearningRule):
    name = "fa"
    summary = "feedback alignment: errors sent down through fixed random matrices"
    feedback = "layerwise"
