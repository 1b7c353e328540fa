"""The base class of the learning rules that train a `bpfree.networks.Network`.

A rule is a *surrogate objective over detached blocks* (see DESIGN.md): the network runs one forward
pass, the rule turns it into a scalar whose ordinary gradient is the rule's update, and the network
takes one gradient and applies it with the optimizer. A rule says

- ``feedback``: which fixed random matrices the network must hold: ``None``; ``"layerwise"`` (one B
  with the shape of each kernel above the first, used in the backward pass: FA); or ``"direct"`` (one
  B_l of shape (units_l, output_dim) per hidden layer, projecting h_l onto the output space).
- ``detach_blocks``: whether each block's input is passed through `stop_gradient`, so that no error
  flows between layers and every hidden layer learns from its own term only.
- ``output_preactivation(z, projections)``: a hook on the output pre-activation z (DFA routes the
  output error to the projections here).
- ``local_losses(projections, y, config)``: the per-hidden-layer terms added to the global loss.
"""

import keras

from bpfree.rules import registry


class LearningRule:
    """A learning rule for the feedforward `Network`; subclasses set the class attributes below."""

    name = None
    summary = ""
    feedback = None
    detach_blocks = False
    # True when `local_losses` returns the projected losses themselves (so the local_loss tracker
    # reuses them instead of computing them again).
    local_losses_are_projected = False
    extra_hparams = {}

    def validate(self, config):
        """Raises ValueError if `config` (a `NetworkConfig`) is not a valid use of the rule."""

    def output_preactivation(self, z, projections):
        return z

    def local_losses(self, projections, y, config):
        """The terms added to the global loss, one per hidden layer (or none)."""
        return []

    def build_model(self, arch, input_dim, output_dim, **options):
        from bpfree.networks import Network

        return Network(self.name, arch, input_dim, output_dim, **options)

    def __repr__(self):
        return f"<learning rule {self.name!r}>"


def projected_loss(projection, y, config):
    """The loss of a projection p_l = h_l B_l against the target, in the output space.

    Classification: mean CE(softmax(p_l), y). Reconstruction: mean MSE(σ(p_l), y), σ the output
    activation. This is the local loss of `cce`/`mse` and the `local_loss` tracker of DFA/DRTP.
    """
    if config.local_loss_kind == "cce":
        return keras.ops.mean(keras.losses.categorical_crossentropy(y, projection, from_logits=True))
    sigma = keras.activations.get(config.output_activation)
    return keras.ops.mean(keras.ops.square(sigma(projection) - y))


register = registry.register
