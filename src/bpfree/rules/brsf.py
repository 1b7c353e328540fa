"""Batchwise random-magnitude sign-concordant feedback, brSF (Liao, Leibo, Poggio 2016, AAAI,
arXiv 1510.05067; biotorch's brSF, jsalbert/biotorch).

The backward matrix has the signs of the current forward weights and random magnitudes redrawn for
every batch:
    B_l^t = |R_l^t| ⊙ sign(W_l),   R_l^t ~ U(±√(6/(fan_in + fan_out)))   (biotorch's Xavier-uniform draw),
    δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
R_l^t is drawn from the stateless seed (seed of layer l's feedback matrix, t), t a counter of training
steps saved with the model, so a run is reproducible and a resumed one continues the sequence; the
network's ``bw_init`` does not apply. Surrogate: the global loss, every Dense above the first a
`FeedbackAlignmentDense(backward="batch_random_sign")`. Alignment target: E[B_l] ∝ sign(W_l).
"""

import keras

from bpfree.rules.registry import register
from bpfree.rules.usf import UniformSignFeedback


@register
class BatchRandomSignFeedback(UniformSignFeedback):
    name = "brsf"
    summary = "batchwise random-magnitude sign-concordant feedback: |R| ⊙ sign(W), R redrawn every batch"
    backward = "batch_random_sign"
    seed_in_step = True  # R_t's draw reads the layer's feedback seed, a constant of the traced step

    def alignment_targets(self, model):
        return self.per_layer(model, lambda layer: keras.ops.sign(layer.kernel))
