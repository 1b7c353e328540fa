"""Kolen–Pollack (Akrout, Wilson, Humphreys, Lillicrap, Tweed 2019, NeurIPS, arXiv 1904.05391).

As in feedback alignment, the error travels down through matrices B_l instead of the transposed
kernels, δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l), but B_l is learned: it receives the same update as its
forward weights, both with weight decay λ (``decay``):
    ΔW_l = −η (h_{l−1}ᵀ δ_l + λ W_l),   ΔB_l = −η (h_{l−1}ᵀ δ_l + λ B_l)     (l ≥ 2; W_1 decays too).
Here B_l has the kernel's shape (fan_in, fan_out), so "ΔB = ΔWᵀ" of the paper (B of shape
(fan_out, fan_in)) reads ΔB = ΔW. Then B_l − W_l shrinks by (1 − ηλ) at every SGD step and B_l → W_l
(``weight_alignment`` → 1): backprop in the limit, from local updates only.

Surrogate: the global loss with nothing detached, every Dense above the first a
`FeedbackAlignmentDense(backward="learned")` (a trainable B whose gradient is the kernel's, in the same
optimizer step as W), plus the decay term λ/2 Σ (‖W_l‖² + ‖B_l‖²). The network's own ``weight_decay``
(L2 on kernels only) would pull W away from B; use ``decay`` instead. W_l aligns with B_l.
"""

import keras

from bpfree.rules.base import number
from bpfree.rules.fa import FeedbackAlignment
from bpfree.rules.registry import register


@register
class KolenPollack(FeedbackAlignment):
    name = "kp"
    summary = "Kolen–Pollack: feedback matrices learned with the kernels' updates and weight decay, B → W"
    search_values = {"decay": (1e-4, 1e-3, 1e-2)}
    backward = "learned"  # W_l aligns with B_l (FeedbackAlignment.alignment_targets)

    def __init__(self, decay=1e-3):
        self.decay = number(self.name, "decay", decay, lambda v: v >= 0, "a weight decay ≥ 0")

    def local_losses(self, forward):
        if not self.decay:
            return {}
        squares = [keras.ops.sum(keras.ops.square(v)) for layer in forward.model.weighted_layers
                   for v in (layer.kernel, getattr(layer, "feedback", None)) if v is not None]
        return {"kp_decay": 0.5 * self.decay * keras.ops.sum(keras.ops.stack(squares))}
