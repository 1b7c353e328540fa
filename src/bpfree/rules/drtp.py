"""Direct random target projection (Frenkel, Lefebvre, Bol 2021, Front. Neurosci. 15:629892).

Hidden layers learn from the one-hot target alone, projected through a fixed random B_l of shape
(units_l, output_dim); nothing from the output error reaches them:
    δ_l = (y B_lᵀ) ⊙ f'(a_l) / N,   ΔW_l = −η h_{l−1}ᵀ δ_l,
with N the batch size (signals are averaged over the batch like Keras losses). The output layer gets
its ordinary gradient. Surrogate, with detached block inputs: J = L + Σ_l Σ (y/N) ⊙ (h_l B_l).

DRTP needs class targets, so reconstruction is refused; with unbounded activations (relu, lrelu,
swish, linear) the target projection does not saturate and training tends to diverge (a warning).
"""

import logging

import keras

from bpfree.rules.direct import ProjectedSignalRule
from bpfree.rules.registry import register

UNBOUNDED_ACTIVATIONS = ("relu", "lrelu", "swish", "linear")


@register
class DirectRandomTargetProjection(ProjectedSignalRule):
    name = "drtp"
    summary = "direct random target projection: the one-hot target projected to every hidden layer"

    def validate(self, config):
        super().validate(config)
        if config.problem_type != "classification":
            raise ValueError(
                f"drtp needs class targets: problem_type {config.problem_type!r} is not supported "
                "(valid: 'classification'). Use dfa, cce→mse or mse for reconstruction."
            )
        if config.activation in UNBOUNDED_ACTIVATIONS:
            logging.getLogger("bpfree").warning(
                "drtp with the unbounded activation %r tends to diverge; bounded ones (tanh, sigmoid) "
                "are what DRTP was designed for.",
                config.activation,
            )

    def local_losses(self, forward):
        if not forward.projections:
            return {}
        target = keras.ops.stop_gradient(keras.ops.cast(forward.y, forward.projections[0].dtype))
        batch = keras.ops.cast(keras.ops.shape(target)[0], target.dtype)
        return {f"target_projection_{l}": keras.ops.sum(target * p) / batch
                for l, p in enumerate(forward.projections, start=1)}
