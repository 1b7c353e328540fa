"""Fully connected networks trained by a learning rule: the arch string, the config, the `Network`.

`Network.train_step` is the same for every feedforward rule (DESIGN.md): one forward pass recording
the hidden activities h_l (each block's input detached when the rule says so) into a `ForwardPass`,
the rule's surrogate objective J = L + Σ_k ℓ_k (its `local_losses` of that pass), one gradient call,
one `optimizer.apply`. Trackers, when asked for, add a second (plain backprop) pass for the true
gradient and nothing else; with none, nothing extra runs.
"""

import dataclasses
import random

import keras
import tensorflow as tf

from bpfree import metrics as bpfree_metrics
from bpfree import optimizers
from bpfree import trackers as trackers_lib
from bpfree.layers import ACTIVATIONS, BW_INITS, DenseBlock, FeedbackAlignmentDense, FeedbackProjection
from bpfree.layers import activation_function, feedback_initializer
from bpfree.arch import OUTPUT_ACTIVATIONS, PROBLEM_TYPES, arch_string, parse_arch  # noqa: F401
from bpfree.rules import registry
from bpfree.rules.base import ForwardPass

_FEEDBACK_SEED_OFFSET = 10_000


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything that defines a feedforward network and its rule; validated on creation."""

    algorithm: str
    arch: tuple
    input_dim: int
    output_dim: int
    activation: str = "tanh"
    batchnorm: bool = False
    dropout: float = 0.0
    use_bias: bool = True
    weight_decay: float = 0.0
    bw_init: str = "ortho"
    problem_type: str = "classification"
    init_fw_weight_aligned: bool = False
    trackers: tuple = ()
    seed: int = 0
    output_activation: str = "softmax"
    rule_hparams: tuple = ()  # ((name, value), ...): the rule's own hparams (its `extra_hparams`)

    def __post_init__(self):
        rule = registry.get(self.algorithm)
        for name, _ in self.rule_hparams:
            if name not in rule.extra_hparams:
                valid = ", ".join(rule.extra_hparams) or "none"
                raise ValueError(f"{name!r} is not an hparam of {self.algorithm!r}; its own hparams: {valid}.")
        activation_function(self.activation)
        feedback_initializer(self.bw_init, 0)
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"Unknown problem_type {self.problem_type!r}; valid: {', '.join(PROBLEM_TYPES)}.")
        valid_out = OUTPUT_ACTIVATIONS[self.problem_type]
        if self.output_activation not in valid_out:
            raise ValueError(
                f"Invalid output_activation {self.output_activation!r} for {self.problem_type}; valid: {', '.join(valid_out)}."
            )
        if self.input_dim <= 0 or self.output_dim <= 0:
            raise ValueError(f"input_dim and output_dim must be positive, got {self.input_dim} and {self.output_dim}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Invalid dropout {self.dropout!r}: a rate in [0, 1).")
        if self.weight_decay < 0:
            raise ValueError(f"Invalid weight_decay {self.weight_decay!r}: must be ≥ 0.")
        trackers_lib.validate(self.trackers)
        if self.init_fw_weight_aligned and rule.feedback is None:
            raise ValueError(f"init_fw_weight_aligned needs feedback matrices; {self.algorithm!r} has none.")
        rule.validate(self)

    def hparam(self, name):
        """The value of the rule's own hparam `name` (its default when not given)."""
        given = dict(self.rule_hparams)
        if name in given:
            return given[name]
        return registry.get(self.algorithm).extra_hparams[name][0]

    @property
    def local_loss_kind(self):
        """"cce" or "mse": the loss in the output space used by local losses and the local_loss tracker."""
        if self.algorithm == "mse" or self.problem_type == "reconstruction":
            return "mse"
        return "cce"


@keras.saving.register_keras_serializable(package="bpfree")
class Network(keras.Model):
    """A fully connected network from an arch string, trained by the learning rule `algorithm`.

    Hidden blocks are Dense [→ BatchNorm] → activation [→ Dropout]; the output layer is Dense →
    softmax (classification) or tanh/sigmoid (reconstruction). See `bpfree.build_model`.
    """

    def __init__(self, algorithm, arch, input_dim, output_dim, *, activation="tanh", batchnorm=False,
                 dropout=0.0, use_bias=True, weight_decay=0.0, bw_init="ortho",
                 problem_type="classification", init_fw_weight_aligned=False, trackers=(), seed=None,
                 output_activation=None, **kwargs):
        if seed is None:
            seed = random.SystemRandom().randrange(2**31 - _FEEDBACK_SEED_OFFSET * 2)
        if output_activation is None:
            output_activation = OUTPUT_ACTIVATIONS.get(problem_type, ("softmax",))[0]
        rule_hparams = _pop_rule_hparams(algorithm, kwargs)
        super().__init__(**kwargs)
        self.network_config = NetworkConfig(
            algorithm=algorithm,
            arch=parse_arch(arch),
            input_dim=int(input_dim),
            output_dim=int(output_dim),
            activation=activation,
            batchnorm=bool(batchnorm),
            dropout=float(dropout),
            use_bias=bool(use_bias),
            weight_decay=float(weight_decay),
            bw_init=bw_init,
            problem_type=problem_type,
            init_fw_weight_aligned=bool(init_fw_weight_aligned),
            trackers=tuple(trackers),
            seed=int(seed),
            output_activation=output_activation,
            rule_hparams=rule_hparams,
        )
        self.rule = registry.get(algorithm)
        self._build_layers()
        self.tracker_metrics = [keras.metrics.Mean(name=n) for n in trackers_lib.metric_names(self)]
        self.rule_metrics = [keras.metrics.Mean(name=n) for n in self.rule.reported_losses(self.network_config)]
        self.build((None, self.network_config.input_dim))
        if self.network_config.init_fw_weight_aligned:
            self._align_forward_weights()

    # ----------------------------------------------------------------------------------- structure
    def _build_layers(self):
        c = self.network_config
        layerwise = self.rule.feedback == "layerwise"
        self.blocks = []
        for i, units in enumerate(c.arch):
            self.blocks.append(DenseBlock(
                units, activation=c.activation, batchnorm=c.batchnorm, dropout=c.dropout,
                use_bias=c.use_bias, weight_decay=c.weight_decay, kernel_seed=c.seed + i,
                # FA: every Dense above the first sends its error down through B.
                bw_init=c.bw_init if layerwise and i > 0 else None,
                feedback_seed=c.seed + _FEEDBACK_SEED_OFFSET + i, name=f"block_{i + 1}",
            ))
        out_kwargs = dict(
            use_bias=c.use_bias,
            kernel_initializer=keras.initializers.GlorotUniform(seed=c.seed + len(c.arch)),
            kernel_regularizer=keras.regularizers.L2(c.weight_decay) if c.weight_decay else None,
            name="output",
        )
        if layerwise:
            self.output_layer = FeedbackAlignmentDense(
                c.output_dim, bw_init=c.bw_init, feedback_seed=c.seed + _FEEDBACK_SEED_OFFSET + len(c.arch), **out_kwargs
            )
        else:
            self.output_layer = keras.layers.Dense(c.output_dim, **out_kwargs)
        self.projections = []
        if self.rule.feedback == "direct":
            self.projections = [
                FeedbackProjection(c.output_dim, bw_init=c.bw_init, seed=c.seed + _FEEDBACK_SEED_OFFSET + i,
                                   name=f"feedback_{i + 1}")
                for i in range(len(c.arch))
            ]
        self._output_activation = keras.activations.get(c.output_activation)
        # The rule's own layers (DTP's learned inverses), built by the rule.
        self.rule_layers = list(self.rule.build_layers(c))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block, proj in zip(self.blocks, self.projections or [None] * len(self.blocks)):
            block.build(shape)
            shape = (shape[0], block.units)
            if proj is not None:
                proj.build(shape)
        self.output_layer.build(shape)
        self.built = True

    @property
    def weighted_layers(self):
        """The Dense layers in order: the hidden ones, then the output layer."""
        return [b.dense for b in self.blocks] + [self.output_layer]

    @property
    def feedback_matrices(self):
        """The fixed feedback matrices (Keras variables): per hidden layer (direct rules), per layer
        above the first (fa, kernel-shaped), or none (bp)."""
        if self.rule.feedback == "direct":
            return [p.feedback for p in self.projections]
        if self.rule.feedback == "layerwise":
            return [layer.feedback for layer in self.weighted_layers[1:]]
        return []

    def _align_forward_weights(self):
        """W_l = B_{l−1} B_lᵀ for hidden l ≥ 2 and W_out = B_L (direct rules); W_l = B_l (fa)."""
        B = [keras.ops.convert_to_tensor(b) for b in self.feedback_matrices]
        layers = self.weighted_layers
        if self.rule.feedback == "layerwise":
            for layer, b in zip(layers[1:], B):
                layer.kernel.assign(b)
            return
        for l in range(1, len(B)):
            layers[l].kernel.assign(keras.ops.matmul(B[l - 1], keras.ops.transpose(B[l])))
        layers[-1].kernel.assign(B[-1])

    # ----------------------------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        _, z = self.forward(inputs, training=training, rule=False)
        return self._output_activation(z)

    def forward(self, x, training=None, rule=True):
        """Returns (hidden activities [h_1..h_L], output pre-activation z).

        ``rule=True`` wires the pass for the rule's gradient (detached blocks, FA feedback);
        ``rule=False`` is the plain network whose gradient is backprop's.
        """
        detach = rule and self.rule.detach_blocks
        feedback = rule and self.rule.feedback == "layerwise"
        h = x
        hidden = []
        for block in self.blocks:
            h = block(keras.ops.stop_gradient(h) if detach else h, training=training, feedback=feedback)
            hidden.append(h)
        h = keras.ops.stop_gradient(h) if detach else h
        if isinstance(self.output_layer, FeedbackAlignmentDense):
            z = self.output_layer(h, feedback=feedback)
        else:
            z = self.output_layer(h)
        return hidden, z

    def hidden_activations(self, x):
        """[h_1, ..., h_L] in inference mode (for histograms and analysis)."""
        hidden, _ = self.forward(x, training=False, rule=False)
        return hidden

    # ----------------------------------------------------------------------------------- training
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """As `keras.Model.compile`; `loss` defaults to the problem's (CCE or MSE), and the metric
        name ``"error_rate"`` (100 − accuracy, %) is understood."""
        if loss is None:
            loss = "categorical_crossentropy" if self.network_config.problem_type == "classification" else "mse"
        super().compile(optimizer=optimizer, loss=loss, metrics=bpfree_metrics.resolve(metrics), **kwargs)

    def compile_from_config(self, config):
        replay_compile(self, config)

    def forward_pass(self, x, y, sample_weight=None, training=True):
        """The forward pass wired for the rule, with the global loss: a `ForwardPass` (what the rule's
        `local_losses` read). The loss head runs under its own tape so that a rule may ask for ∂L/∂z."""
        hidden, z = self.forward(x, training=training, rule=True)
        projections = [proj(h) for proj, h in zip(self.projections, hidden)]
        with tf.GradientTape(watch_accessed_variables=False) as head:
            z = self.rule.output_preactivation(z, projections)
            head.watch(z)
            y_pred = self._output_activation(z)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return ForwardPass(self, x, y, sample_weight, hidden, z, projections, y_pred, loss, head)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        tracking = bool(self.network_config.trackers)
        needs_bp = trackers_lib.needs_bp_gradient(self.network_config.trackers)
        with tf.GradientTape(persistent=needs_bp) as tape:
            if needs_bp:
                state = [tf.identity(v) for v in self._replayable_state()]
            forward = self.forward_pass(x, y, sample_weight, training=True)
            loss = forward.loss
            local = self.rule.local_losses(forward)
            objective = loss + keras.ops.sum(keras.ops.stack(list(local.values()))) if local else loss
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            objective = self.optimizer.scale_loss(objective)
            if needs_bp:
                # Replay the same dropout masks and batch-norm statistics for the true gradient.
                for v, value in zip(self._replayable_state(), state):
                    v.assign(value)
                bp_pred = self(x, training=True)
                bp_loss = self.compute_loss(x=x, y=y, y_pred=bp_pred, sample_weight=sample_weight, training=True)
        variables = self.trainable_variables
        grads = tape.gradient(objective, variables)
        bp_grads = tape.gradient(bp_loss, [b.dense.kernel for b in self.blocks]) if needs_bp else None
        if needs_bp:
            del tape
        optimizers.apply_after(self.optimizer, grads, variables, after=(forward.y_pred, local, bp_grads))
        for metric in self.rule_metrics:
            metric.update_state(local[metric.name])
        if tracking:
            values = trackers_lib.compute(self, dict(zip((id(v) for v in variables), grads)), bp_grads,
                                          forward, local)
            for metric in self.tracker_metrics:
                metric.update_state(values[metric.name])
        return self.compute_metrics(x, y, forward.y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        logs = super().test_step(data)
        names = {m.name for m in self.tracker_metrics + self.rule_metrics}
        return {k: v for k, v in logs.items() if k not in names}

    def _replayable_state(self):
        # The blocks' dropout seed-generator states and batch-norm moving statistics: not the feedback
        # matrices, not the rule's own layers (whose noise must not repeat from step to step).
        fixed = {id(b) for b in self.feedback_matrices}
        return [v for block in self.blocks for v in block.non_trainable_variables if id(v) not in fixed]

    # ----------------------------------------------------------------------------------- config
    def get_config(self):
        c = self.network_config
        return {
            "name": self.name,
            "algorithm": c.algorithm,
            "arch": arch_string(c.arch),
            "input_dim": c.input_dim,
            "output_dim": c.output_dim,
            "activation": c.activation,
            "batchnorm": c.batchnorm,
            "dropout": c.dropout,
            "use_bias": c.use_bias,
            "weight_decay": c.weight_decay,
            "bw_init": c.bw_init,
            "problem_type": c.problem_type,
            "init_fw_weight_aligned": False,  # the aligned weights are in the saved weights already
            "trackers": list(c.trackers),
            "seed": c.seed,
            "output_activation": c.output_activation,
            **dict(c.rule_hparams),
        }


def _pop_rule_hparams(algorithm, kwargs):
    """Takes the rule's own hparams (and any other rule's, refused by `NetworkConfig`) out of `kwargs`:
    ((name, value), ...) with every one of the rule's hparams, its default where not given."""
    rule = registry.get(algorithm)
    known = {name for r in registry.names() for name in getattr(registry.get(r), "extra_hparams", {})}
    given = {name: kwargs.pop(name) for name in list(kwargs) if name in known}
    values = {name: given.pop(name, default) for name, (default, _) in rule.extra_hparams.items()}
    return tuple(values.items()) + tuple(given.items())


def replay_compile(model, config):
    """`compile_from_config` for models that override `compile`.

    Keras skips compile_from_config for models whose compile() is custom; ours only fill in defaults,
    so the saved compile arguments replay through it unchanged.
    """
    model.compile(**keras.saving.deserialize_keras_object(config))
    if model.built:
        model.optimizer.build(model.trainable_variables)


def build_model(algorithm, arch, input_dim, output_dim, **options):
    """A model for `algorithm` (any registered rule) with hidden widths `arch` ("500-1000-500").

    Options (feedforward rules): activation ("tanh"), batchnorm (False), dropout (0.0), use_bias
    (True), weight_decay (0.0, L2 on kernels), bw_init ("ortho"), problem_type ("classification"),
    init_fw_weight_aligned (False), trackers (()), seed (None), output_activation (None: softmax for
    classification, tanh for reconstruction), and the rule's own hparams (`rules.get(algorithm).extra_hparams`,
    e.g. alpha_t for dtp). Raises ValueError naming the valid choices on bad input.
    """
    return registry.get(algorithm).build_model(arch, input_dim, output_dim, **options)
