"""The base class of the learning rules that train a `bpfree.models.feedforward.Network`.

A rule is a *surrogate objective over detached blocks* (see DESIGN.md): the network runs one forward
pass, the rule turns it into a scalar whose ordinary gradient is the rule's update, and the network
takes one gradient and applies it with the optimizer. A rule says

- ``feedback``: which fixed random matrices the network must hold: ``None``; ``"layerwise"`` (one B
  with the shape of each kernel above the first, used in the backward pass: FA); or ``"direct"`` (one
  B_l of shape (units_l, output_dim) per hidden layer, projecting h_l onto the output space).
- ``detach_blocks``: whether each block's input is passed through `stop_gradient`, so that no error
  flows between layers and every hidden layer learns from its own term only.
- ``build_layers(config)``: extra layers of the rule the network owns, trains and saves (DTP's learned
  inverses); none by default.
- ``output_preactivation(z, projections)``: a hook on the output pre-activation z (DFA routes the
  output error to the projections here).
- ``local_losses(forward)``: the terms added to the global loss, by name, from the `ForwardPass`
  (activities, pre-activations, output pre-activation and its error ∂L/∂z, targets, the model).
- ``reported_losses(config)``: the names among those terms that the network reports as metrics on
  every step (DTP's ``inverse_loss_l``); none by default.
"""

import keras

from bpfree.rules import registry


class ForwardPass:
    """One forward pass of a `Network` wired for its rule, with the global loss: what a rule sees.

    - ``inputs``: the inputs of the weighted layers [x, h_1, ..., h_L] (h_L feeds the output layer);
    - ``hidden``: [h_1, ..., h_L]; ``z``: the output pre-activation (after the rule's
      `output_preactivation`); ``projections``: [h_l B_l] (direct rules); ``y_pred``, ``loss``;
    - ``preactivations``: [a_1, ..., a_L], a_l = h_{l−1} W_l + b_l (the Dense's output, before any
      batch norm), computed on first use;
    - ``output_error()``: e = ∂L/∂z, taken from a tape on the loss head alone (z → ŷ → L, a few ops;
      no backward pass through the network), computed on first use.
    """

    def __init__(self, model, x, y, sample_weight, hidden, z, projections, y_pred, loss, head_tape):
        self.model = model
        self.x = x
        self.y = y
        self.sample_weight = sample_weight
        self.hidden = list(hidden)
        self.z = z
        self.projections = list(projections)
        self.y_pred = y_pred
        self.loss = loss
        self._head_tape = head_tape
        self._output_error = None
        self._preactivations = None

    @property
    def inputs(self):
        return [self.x] + self.hidden

    @property
    def batch_size(self):
        return keras.ops.shape(self.z)[0]

    @property
    def preactivations(self):
        if self._preactivations is None:
            self._preactivations = [dense_preactivation(block.dense, keras.ops.stop_gradient(h))
                                    for block, h in zip(self.model.blocks, self.inputs)]
        return self._preactivations

    def output_error(self):
        if self._output_error is None:
            self._output_error = keras.ops.stop_gradient(self._head_tape.gradient(self.loss, self.z))
        return self._output_error


def dense_preactivation(layer, h):
    """h W + b for a Dense layer (its kernel and bias, no activation, no custom backward)."""
    a = keras.ops.matmul(h, layer.kernel)
    return a + layer.bias if layer.bias is not None else a


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

    def build_layers(self, config):
        """Layers the rule adds to the network (trained, saved with it); none by default."""
        return []

    def output_preactivation(self, z, projections):
        return z

    def local_losses(self, forward):
        """{name: term} added to the global loss (e.g. one per hidden layer), from a `ForwardPass`."""
        return {}

    def reported_losses(self, config):
        """The names among `local_losses` reported as metrics on every training step."""
        return ()

    def build_model(self, arch, input_dim, output_dim, **options):
        from bpfree.models.feedforward import Network

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
