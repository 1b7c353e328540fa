"""Feedback alignment (Lillicrap, Cownden, Tweed, Akerman 2016, Nat. Commun. 7:13276).

The error travels down through fixed random matrices B_l with the shapes of the kernels, instead of
the transposed forward weights:
    δ_L = ∂L/∂a_L,   δ_l = (δ_{l+1} B_{l+1}ᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
The surrogate objective is the global loss with nothing detached; every Dense above the first is a
`FeedbackAlignmentDense`, whose custom gradient sends δ Bᵀ to its input. W_l aligns with B_l.
On a convolution, B_l is a fixed random kernel of W_l's shape and the error goes down by the transposed
convolution with B_l instead of W_l (`FeedbackAlignmentConv2D`), as in biotorch's conv layers.
"""

from bpfree import seeds
from bpfree.layers.conv import FeedbackAlignmentConv2D
from bpfree.layers.feedback import FeedbackAlignmentDense
from bpfree.rules.base import Rule
from bpfree.rules.registry import register


@register
class FeedbackAlignment(Rule):
    name = "fa"
    summary = "feedback alignment: errors sent down through fixed random matrices"
    backward = "fixed"  # the FeedbackAlignmentDense option: what B is (kp, usf, brsf, frsf choose others)
    convolutional = True  # a convolution's B is a kernel of W's shape (the transposed convolution uses it)

    def dense(self, l, units, config, **kwargs):
        if l == 1:  # nothing below the first layer needs its error
            return super().dense(l, units, config, **kwargs)
        return FeedbackAlignmentDense(units, bw_init=config.bw_init, feedback_seed=seeds.feedback(config.seed, l),
                                      backward=self.backward, **kwargs)

    def conv(self, l, spec, config, **kwargs):
        if l == 1:
            return super().conv(l, spec, config, **kwargs)
        return FeedbackAlignmentConv2D(spec.filters, spec.kernel, strides=spec.stride, padding=spec.padding,
                                       bw_init=config.bw_init,
                                       feedback_seed=seeds.feedback(config.seed, l), backward=self.backward, **kwargs)

    def alignment_targets(self, model):
        return self.per_layer(model, lambda layer: layer.feedback)

    @staticmethod
    def per_layer(model, target):
        """{l: target(layer l)} for every weighted layer above the first (those with a B)."""
        return {l: target(layer) for l, layer in enumerate(model.weighted_layers, start=1) if l > 1}
