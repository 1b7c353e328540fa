"""Feedforward networks trained by a learning rule: `Network` and its frozen `NetworkConfig`.

A `Network` is a stack of hidden blocks and an output layer (Dense → softmax for classification,
tanh/sigmoid for reconstruction). The arch (`bpfree.arch`) gives the blocks: convolution blocks
(Conv2D [→ BatchNorm] → activation [→ Dropout] [→ poolings], on image inputs of shape (H, W, C)) first,
then dense blocks (Dense [→ BatchNorm] → activation [→ Dropout]); the feature map is flattened where
the first dense layer (or the output layer) reads it. Its rule builds what it
needs, block by block: each Dense or Conv2D (plain, or one whose backward pass uses other weights: FA), fixed
projections onto the output space (DFA, DRTP, local losses) and layers of its own (DTP's inverses).
Training is `RuleModel.train_step`: one pass wired for the rule, the rule's local losses, one gradient.
"""

import dataclasses
import math

import keras

from bpfree import checks, seeds
from bpfree import trackers as trackers_lib
from bpfree import arch as arch_lib
from bpfree import rules
from bpfree.arch import ConvSpec, arch_string, parse_layers
from bpfree.layers import ConvBlock, DenseBlock, activation_function, call_dense, feedback_initializer
from bpfree.models.base import resolve_seed
from bpfree.models.layered import LayeredNetwork
from bpfree.models.rule_options import configure_rule


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything that defines a feedforward network but its rule; validated on creation."""

    algorithm: str
    arch: tuple  # `bpfree.arch.parse_layers`: an int per dense block, a ConvSpec per convolution block
    input_dim: object  # the number of input features, or an image shape (H, W, C) (conv archs)
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

    def __post_init__(self):
        activation_function(self.activation)
        feedback_initializer(self.bw_init, 0)
        arch_lib.output_activation(self.problem_type, self.output_activation)
        if self.output_dim <= 0:
            raise ValueError(f"output_dim must be positive, got {self.output_dim}.")
        if self.is_conv and not isinstance(self.input_dim, tuple):
            raise ValueError(f"Invalid input_dim {self.input_dim!r} for arch {arch_string(self.arch)!r}: "
                             "convolutions need an image shape (height, width, channels).")
        if not self.is_conv and isinstance(self.input_dim, tuple):
            raise ValueError(f"Invalid input_dim {self.input_dim!r} for the dense arch {arch_string(self.arch)!r}: "
                             f"dense networks take flat inputs (input_dim={math.prod(self.input_dim)}).")
        if self.is_conv:
            shape = self.input_dim
            for block in self.arch:
                if isinstance(block, ConvSpec):
                    shape = block.output_shape(shape)
                    if min(shape[:2]) < 1:
                        raise ValueError(f"Invalid arch {arch_string(self.arch)!r} for inputs of shape "
                                         f"{self.input_dim}: its poolings shrink the feature map at {block} to nothing.")
        checks.number("dropout", self.dropout, lambda v: 0 <= v < 1, "a rate in [0, 1)")
        checks.number("weight_decay", self.weight_decay, lambda v: v >= 0, "must be ≥ 0")
        trackers_lib.validate(self.trackers)

    @property
    def is_conv(self):
        return any(isinstance(b, ConvSpec) for b in self.arch)

    @classmethod
    def create(cls, rule, arch, input_dim, output_dim, *, activation="tanh", batchnorm=False, dropout=0.0,
               use_bias=True, weight_decay=0.0, bw_init="ortho", problem_type="classification",
               init_fw_weight_aligned=False, trackers=(), seed=None, output_activation=None):
        """The config of `rule`'s network from `build_model`'s options, checked by the rule too."""
        blocks = parse_layers(arch)
        if any(isinstance(b, ConvSpec) for b in blocks) and not rule.convolutional:
            raise ValueError(f"Invalid arch {arch_string(blocks)!r} for rule {rule.name!r}: it trains fully connected "
                             f"networks only; rules with convolutions: {', '.join(rules.convolutional_names())}.")
        shape = arch_lib.input_shape(input_dim)
        config = cls(algorithm=rule.name, arch=blocks, input_dim=shape[0] if len(shape) == 1 else shape,
                     output_dim=int(output_dim),
                     activation=activation, batchnorm=bool(batchnorm), dropout=float(dropout),
                     use_bias=bool(use_bias), weight_decay=float(weight_decay), bw_init=bw_init,
                     problem_type=problem_type, init_fw_weight_aligned=bool(init_fw_weight_aligned),
                     trackers=tuple(trackers), seed=resolve_seed(seed),
                     output_activation=arch_lib.output_activation(problem_type, output_activation))
        rule.validate(config)
        return config


@keras.saving.register_keras_serializable(package="bpfree")
class Network(LayeredNetwork):
    """A feedforward network (dense, or convolutional then dense) from an arch string, trained by the learning rule `algorithm` (a name,
    a configured `bpfree.rules.Rule`, or a name with the rule's hparams as keywords or as `rule`).
    See `bpfree.build_model` for the options."""

    def __init__(self, algorithm, arch, input_dim, output_dim, *, activation="tanh", batchnorm=False,
                 dropout=0.0, use_bias=True, weight_decay=0.0, bw_init="ortho", problem_type="classification",
                 init_fw_weight_aligned=False, trackers=(), seed=None, output_activation=None, rule=None, **kwargs):
        self.rule = configure_rule(algorithm, rule, kwargs)
        super().__init__(**kwargs)
        self.network_config = NetworkConfig.create(
            self.rule, arch, input_dim, output_dim, activation=activation, batchnorm=batchnorm, dropout=dropout,
            use_bias=use_bias, weight_decay=weight_decay, bw_init=bw_init, problem_type=problem_type,
            init_fw_weight_aligned=init_fw_weight_aligned, trackers=trackers, seed=seed,
            output_activation=output_activation)
        self._build_layers()
        self._build_sublayers((None, *arch_lib.input_shape(self.network_config.input_dim)))
        self._create_metrics()
        self.built = True
        if self.network_config.init_fw_weight_aligned:
            self._align_forward_weights()

    @classmethod
    def check_options(cls, rule, arch, input_dim, output_dim, **options):
        """Raises ValueError if `from_rule` would refuse these options; builds nothing."""
        NetworkConfig.create(rule, arch, input_dim, output_dim, **options)

    # ----------------------------------------------------------------------------------- structure
    def _build_layers(self):
        c = self.network_config
        regularizer = keras.regularizers.L2(c.weight_decay) if c.weight_decay else None

        def glorot(l):
            return keras.initializers.GlorotUniform(seed=seeds.layer_weights(c.seed, l))

        def dense(l, units, name):
            return self.rule.dense(l, units, c, use_bias=c.use_bias, name=name, kernel_regularizer=regularizer,
                                   kernel_initializer=glorot(l))

        def block(l, spec):
            options = dict(activation=c.activation, batchnorm=c.batchnorm, dropout=c.dropout,
                           dropout_seed=seeds.dropout(c.seed, l), name=f"block_{l}")
            if isinstance(spec, int):
                return DenseBlock(dense(l, spec, "dense"), **options)
            conv = self.rule.conv(l, spec, c, use_bias=c.use_bias, name="conv", kernel_regularizer=regularizer,
                                  kernel_initializer=glorot(l))
            return ConvBlock(conv, pools=spec.pools, **options)

        self.blocks = [block(l, spec) for l, spec in enumerate(c.arch, start=1)]
        self.output_layer = dense(len(c.arch) + 1, c.output_dim, "output")
        self.projections = list(self.rule.projections(c))
        self._output_activation = keras.activations.get(c.output_activation)
        self.rule_layers = list(self.rule.build_layers(c))

    def build(self, input_shape):
        self._build_sublayers(input_shape)
        self.built = True

    def _build_sublayers(self, input_shape):
        shape = tuple(input_shape)
        for block, proj in zip(self.blocks, self.projections or [None] * len(self.blocks)):
            block.build(shape if isinstance(block, ConvBlock) else _flat(shape))
            before = shape
            shape = block.compute_output_shape(shape if isinstance(block, ConvBlock) else _flat(shape))
            if proj is not None:  # B_l's rows: the pooled map's, or the map's before pooling
                proj.build(block.unpooled_shape(before) if self._projects_unpooled(block) else shape)
        self.output_layer.build(_flat(shape))

    def _align_forward_weights(self):
        """W_l = T_l for every alignment target of the rule (W_l = B_l for fa; B_{l−1} B_lᵀ and B_L for
        the direct rules, where their shapes are W_l's)."""
        targets = self.rule.alignment_targets(self)
        if not targets:
            raise ValueError(f"init_fw_weight_aligned needs feedback matrices; {self.rule.name!r} has none.")
        for l, target in targets.items():
            self.weighted_layers[l - 1].kernel.assign(target)

    # ----------------------------------------------------------------------------------- forward
    def forward(self, x, training=None, rule=True, unpooled=False):
        """Returns (hidden activities [h_1..h_L], output pre-activation z).

        ``rule=True`` wires the pass for the rule's gradient (detached blocks, feedback weights in the
        backward pass); ``rule=False`` is the plain network whose gradient is backprop's. ``unpooled``:
        (hidden, z, the blocks' activities before their poolings), for ``project_before_pool``.
        """
        detach = rule and self.rule.detach_blocks
        h = x
        hidden, before = [], []
        for block in self.blocks:
            inputs = keras.ops.stop_gradient(h) if detach else h
            if unpooled and self._projects_unpooled(block):
                h_before, h = block(inputs, training=training, feedback=rule, unpooled=True)
            else:
                h_before = h = block(inputs, training=training, feedback=rule)
            hidden.append(h)
            before.append(h_before)
        h = keras.ops.stop_gradient(h) if detach else h
        z = call_dense(self.output_layer, h, feedback=rule, training=training)
        return (hidden, z, before) if unpooled else (hidden, z)

    def _projects_unpooled(self, block):
        """Whether the rule projects `block`'s activity before its poolings (direct rules' hparam)."""
        return bool(getattr(self.rule, "project_before_pool", False) and getattr(block, "pools", ()))

    def projected_forward(self, x, training=None):
        """`LayeredNetwork.projected_forward`; under ``project_before_pool`` the projections read the blocks'
        activities before their poolings."""
        if not getattr(self.rule, "project_before_pool", False):
            return super().projected_forward(x, training)
        return self.forward(x, training=training, rule=True, unpooled=True)

    def _stateful_layers(self):
        return [*self.blocks, self.output_layer]

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
            "rule": self.rule.get_config(),
        }


def _flat(shape):
    """A batch shape as a dense layer reads it: (N, H, W, C) → (N, H·W·C)."""
    return (shape[0], math.prod(shape[1:])) if len(shape) > 2 else tuple(shape)

