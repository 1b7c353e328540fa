"""Local losses through fixed random classifiers (Mostafa, Ramesh, Cauwenberghs 2018,
Front. Neurosci. 12:608).

Every hidden layer has a fixed random readout B_l of shape (units_l, output_dim) and minimises its own
loss on ŷ_l = h_l B_l, its input detached:
    cce: ℓ_l = mean CE(softmax(h_l B_l), y)          (classification)
    mse: ℓ_l = mean MSE(σ(h_l B_l), y)                (σ the output activation; the one for reconstruction)
    δ_l = ∂ℓ_l/∂a_l = ((∂ℓ_l/∂ŷ_l) B_lᵀ) ⊙ f'(a_l),   ΔW_l = −η h_{l−1}ᵀ δ_l.
The output layer gets the global loss. Surrogate: J = L + Σ_l ℓ_l.

As in the ancestor, `cce` on a reconstruction problem uses the MSE local loss (cce→mse).
"""

from bpfree.rules.base import projected_loss
from bpfree.rules.direct import DirectFeedbackRule
from bpfree.rules.registry import register


class LocalLoss(DirectFeedbackRule):
    local_losses_are_projected = True

    def local_losses(self, forward):
        config = forward.model.network_config
        kind = self.local_loss_kind(config)
        return {f"local_loss_{l}": projected_loss(p, forward.y, kind, config.output_activation)
                for l, p in enumerate(forward.projections, start=1)}


@register
class LocalCrossEntropy(LocalLoss):
    name = "cce"
    summary = "local cross-entropy losses through fixed random classifiers (MSE for reconstruction)"


@register
class LocalMeanSquaredError(LocalLoss):
    name = "mse"
    summary = "local MSE losses through fixed random readouts"

    def local_loss_kind(self, config):
        return "mse"
