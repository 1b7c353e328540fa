"""Backpropagation: the reference every other rule is compared against.

Every layer gets the true gradient of the global loss L: for a = h_{l−1} W_l + b_l, h_l = f(a_l),
    δ_L = ∂L/∂a_L,   δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
The surrogate objective is L itself, with nothing detached.
"""

from bpfree.rules.base import Rule
from bpfree.rules.registry import register


@register
class Backpropagation(Rule):
    name = "bp"
    summary = "backpropagation (the true gradient)"
    convolutional = True
