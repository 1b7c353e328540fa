"""`Rule`: a learning rule as a configured object, and the hooks a model calls.

A rule is a *surrogate objective over detached blocks* (DESIGN.md): the model runs one forward pass
(a `bpfree.forward_pass.ForwardPass`), the rule turns it into a scalar whose ordinary gradient is the
rule's update, and the model takes one gradient and applies it with the optimizer.

Like a Keras optimizer, a rule's hparams are its constructor's keyword arguments, with defaults;
`get_config()` returns them and a model saves them with itself. `hparams()` lists them,
`search_values` the values a grid tries by default. Hooks (all optional):

- ``model``: the kind of model that trains the rule ("feedforward", "invertible", "gle"; `bpfree.models`).
- ``detach_blocks``: whether each block's input passes through `stop_gradient` (no error flows
  between layers; every hidden layer learns from its own term).
- ``dense(l, units, config, **kwargs)``: the Dense layer of weighted layer l (1..L+1, the output
  layer last): plain, or one whose backward pass uses other weights than its kernel (FA);
  ``conv(l, spec, config, **kwargs)``: the Conv2D of a convolution block (`bpfree.arch.ConvSpec`),
  for rules with ``convolutional = True`` (the others refuse an arch with convolutions).
- ``projections(config)``: fixed projections of each hidden layer onto the output space (DFA, DRTP,
  local losses); ``build_layers(config)``: other layers of the rule the model owns, trains and saves
  (DTP's learned inverses).
- ``output_preactivation(z, projections)``: a hook on the output pre-activation z.
- ``local_losses(forward)``: the terms added to the global loss, by name.
- ``reported_losses(config)``: the names among those the model reports as metrics on every step.
- ``alignment_targets(model)``: {l: T_l}, what W_l aligns with for this rule (the ``weight_alignment``
  tracker and ``init_fw_weight_aligned``); none by default.
- ``validate(config)``: refuses a model configuration the rule cannot train (a ValueError).
"""

import inspect

import keras

from bpfree import checks


class Rule:
    """The base of every learning rule; subclasses set the class attributes and take their hparams as
    constructor keyword arguments (stored as attributes of the same names)."""

    name = None
    summary = ""
    model = "feedforward"
    search_values = {}  # {hparam: the values a grid tries when the search space names none}
    detach_blocks = False
    convolutional = False  # whether the rule trains convolution blocks (its `conv` hook)
    # Whether the train step reads a constant derived from the model's seed (not a variable): then the
    # executions of one structure with different seeds cannot share a program (`tuning.options.structure_key`).
    seed_in_step = False
    # Whether `bpfree.convert` can train a user's Keras graph with the rule (its hooks need no arch string).
    convertible = True
    # True when `local_losses` returns the projected losses themselves (the local_loss tracker reuses them).
    local_losses_are_projected = False

    @classmethod
    def hparams(cls):
        """{hparam: default}: the rule's own hyperparameters, its constructor's keyword arguments."""
        return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self")}

    def get_config(self):
        return {name: getattr(self, name) for name in self.hparams()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"<rule {self.name}({args})>"

    # ----------------------------------------------------------------------------- model hooks
    def validate(self, config):
        """Raises ValueError if `config` (the model's frozen configuration) is not a valid use of the rule."""

    def dense(self, l, units, config, **kwargs):
        """The Dense layer of weighted layer `l` (1..L+1); a plain `keras.layers.Dense` by default."""
        return keras.layers.Dense(units, **kwargs)

    def conv(self, l, spec, config, **kwargs):
        """The Conv2D of weighted layer `l`, a block `spec` (`bpfree.arch.ConvSpec`); plain by default."""
        return keras.layers.Conv2D(spec.filters, spec.kernel, strides=spec.stride, padding=spec.padding, **kwargs)

    def projections(self, config):
        """Fixed projections of the hidden layers onto the output space; none by default."""
        return []

    def build_layers(self, config):
        """Layers the rule adds to the model (trained, saved with it); none by default."""
        return []

    def output_preactivation(self, z, projections):
        return z

    def local_losses(self, forward):
        """{name: term} added to the global loss (e.g. one per hidden layer), from a `ForwardPass`."""
        return {}

    def reported_losses(self, config):
        """The names among `local_losses` reported as metrics on every training step."""
        return ()

    def alignment_targets(self, model):
        """{l: T_l}: the matrix W_l aligns with under this rule; empty when the rule has none."""
        return {}

    def local_loss_kind(self, config):
        """"cce" or "mse": the loss in the output space of local losses and the local_loss tracker."""
        return "mse" if config.problem_type == "reconstruction" else "cce"


def projected_loss(projection, y, kind, output_activation):
    """The loss of a projection p_l = h_l B_l against the target, in the output space.

    kind "cce": mean CE(softmax(p_l), y). "mse": mean MSE(σ(p_l), y), σ the output activation. This is
    the local loss of `cce`/`mse` and the `local_loss` tracker of DFA/DRTP.
    """
    if kind == "cce":
        return keras.ops.mean(keras.losses.categorical_crossentropy(y, projection, from_logits=True))
    sigma = keras.activations.get(output_activation)
    return keras.ops.mean(keras.ops.square(sigma(projection) - y))


def number(rule, name, value, ok, valid):
    """A rule hparam checked in the rule's constructor: a finite number with ok(value), as a float."""
    return float(checks.number(name, value, ok, valid, owner=rule))


def whole(rule, name, value, ok, valid):
    """A rule hparam that must be a whole number (an int, or a float like 2.0) with ok(value), as an int."""
    if checks.is_number(value) and float(value).is_integer():
        value = int(value)
    return checks.whole(name, value, ok, valid, owner=rule)


def flag(rule, name, value):
    """A boolean rule hparam."""
    if not isinstance(value, bool):
        raise checks.invalid(name, value, "true or false", owner=rule)
    return value
