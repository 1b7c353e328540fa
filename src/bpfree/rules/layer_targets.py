"""What the target-propagation rules on ordinary feedforward networks share (dtp, tp_lsq, tp_rinv).

Notation (row vectors, a batch of N): h_0 = x, a_l = h_{l−1} W_l + b_l and h_l = σ(a_l) for the hidden
layers l = 1..L, z = h_L W_{L+1} + b_{L+1} the output pre-activation (layer L+1 is affine; its output
nonlinearity belongs to the loss, as in the `jsseely/tensorflow-target-prop` seed), L the global loss
(a mean over the batch).

Top target, on z and per example:
    t_{L+1} = z − α_t · N · ∂L/∂z                  (softmax + CE: t_{L+1} = z − α_t (ŷ − y)).
The seed writes t = z − α_t ∂L/∂z with the batch-mean loss, so its step carries a hidden 1/N (its
α_t ∈ [0.5, 1] moves z by ~1/B of the error). We multiply by N: α_t is the fraction of the per-example
error step and the targets do not depend on the batch size (our α_t = the seed's α_t / N).

Hidden targets t_L, ..., t_1 come down from t_{L+1} through the rule's inverses (see each rule's
module), all under stop_gradient. With every block's input detached, the surrogate objective is
    J = L + Σ_{l=1..L} ½ mean_{n,j} (h_l − sg(t_l))²   [+ the rule's own terms: DTP's inverse losses],
so the output layer learns from L alone and hidden layer l from its target loss alone:
    ∂J/∂a_l = (h_l − t_l) ⊙ σ'(a_l) / (N n_l).
This is the activity-target form of the seed's commits 8b396bc/dbc19f7 (its HEAD's pre-activation form
feeds an uncomputed target for DTP). The mean over units hides a factor 1/n_l in the step size (as in
the seed); adaptive optimizers (Adam, RMSProp) do not see it.

Batch norm and dropout are refused: the targets invert the Dense + activation of each block, and a
batch-norm or dropout layer in between has no inverse that holds from one batch to the next.
Reconstruction (tanh/sigmoid output, MSE) works unchanged: only ∂L/∂z enters the top target.
"""

import keras

from bpfree import checks
from bpfree.layers import ACTIVATIONS
from bpfree.rules.base import Rule, number


class LayerTargetRule(Rule):
    """Hidden layers regress onto targets propagated down from the output target; ``alpha_t`` is the
    step of the top target."""

    detach_blocks = True
    convertible = False  # the inverses are built from the arch string's blocks
    search_values = {"alpha_t": (0.01, 0.1, 0.5, 1.0)}
    activations = ACTIVATIONS  # the hidden activations the rule's inverses handle

    def __init__(self, alpha_t=0.1):
        self.alpha_t = number(self.name, "alpha_t", alpha_t, lambda v: v >= 0, "a number ≥ 0")

    # ------------------------------------------------------------------------------- validation
    def validate(self, config):
        if config.batchnorm:
            raise ValueError(f"{self.name} does not support batchnorm=True (valid: False): its targets invert "
                             "each block's Dense + activation.")
        if config.dropout:
            raise ValueError(f"{self.name} does not support dropout={config.dropout!r} (valid: 0.0): its targets "
                             "invert each block's Dense + activation.")
        checks.choice("activation", config.activation, self.activations, label=f"{self.name} cannot invert the")

    # ------------------------------------------------------------------------------- targets
    def top_target(self, forward):
        """t_{L+1} = z − α_t N ∂L/∂z, detached."""
        z = forward.z
        alpha = keras.ops.cast(self.alpha_t, z.dtype)
        n = keras.ops.cast(forward.batch_size, z.dtype)
        return keras.ops.stop_gradient(z - alpha * n * forward.output_error())

    def targets(self, forward):
        """[t_1, ..., t_L, t_{L+1}]: the target of every weighted layer's output (h_l, then z), detached."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------- objective
    def local_losses(self, forward):
        targets = self.targets(forward)
        return {f"target_loss_{l}": target_loss(h, t)
                for l, (h, t) in enumerate(zip(forward.hidden, targets), start=1)}

    def reported_losses(self, config):
        return tuple(f"target_loss_{l}" for l in range(1, len(config.arch) + 1))


def target_loss(h, t):
    """½ mean((h − sg(t))²) over the batch and the units."""
    t = keras.ops.stop_gradient(keras.ops.cast(t, h.dtype))
    return 0.5 * keras.ops.mean(keras.ops.square(h - t))

