"""Invertible networks trained by target propagation through exact inverses (GAIT-prop, TP, BP).

Every layer is a square `InvertibleDense` (k_l × k_l) applied to the first k_l units of the layer
below, as in the GAIT-prop seed's `inv_net.py`:

- square: every width equals the input width (arch "64-64" with input_dim 64: two hidden layers and a
  64-wide output layer); classes are read from the first `output_dim` output units and the other
  output units are targeted at their own value: t_L = [y, h_L[:, C:]];
- tower: non-increasing widths (arch "784-500-200" with input_dim 784 and 10 classes: layers of 784,
  500, 200 and 10 units); layer l sees h_{l−1}[:, :k_l], the dropped units h_{l−1}[:, k_l:] are
  auxiliary activity, carried unchanged into the targets of layer l−1 (so they get zero error), and
  the output layer is `output_dim` wide.

The global loss is the seed's ½ · mean_n Σ_units (h_L − t_L)².

The rule turns the forward activities into per-layer errors δ_l (already multiplied by D_l) and its
`local_losses` into the surrogate Σ_l Σ stop_gradient(δ_l) ⊙ a_l / N over detached inputs (a_l the
pre-activation), whose gradient is ∇W_l = h_{l−1}ᵀ δ_l / N, ∇b_l = mean_n δ_l — the seed's update —
plus the orthogonal regulariser (`bpfree.rules.target_prop`). The train step is `RuleModel`'s: one
forward pass, one gradient call; the reported loss (the compiled one, MSE by default) carries no gradient.
"""

import keras
import tensorflow as tf

from bpfree import checks, seeds
from bpfree import trackers as trackers_lib
from bpfree.arch import arch_string, parse_arch
from bpfree.forward_pass import ForwardPass
from bpfree.layers.invertible import InvertibleDense
from bpfree.models.base import RuleModel, resolve_seed
from bpfree.models.rule_options import configure_rule

ACTIVATIONS = ("lrelu", "linear")
TRACKERS = ("bp_cosine",)


def layer_widths(algorithm, arch, input_dim, output_dim):
    """The width of every invertible layer, the output layer last; a ValueError if `arch` cannot be
    inverted: square (every width = input_dim; the output layer is input_dim wide too) or tower
    (non-increasing widths ≤ input_dim; the output layer is output_dim wide, ≤ the last width)."""
    widths = parse_arch(arch, owner=algorithm)
    if all(w == input_dim for w in widths) and output_dim <= input_dim:
        return widths + (input_dim,)
    chain = (input_dim,) + widths + (output_dim,)
    if any(b > a for a, b in zip(chain, chain[1:])):
        raise ValueError(
            f"{algorithm} needs an invertible network and arch {arch!r} (input_dim {input_dim}, output_dim "
            f"{output_dim}) is not one: either square (every width = input_dim {input_dim}) or a tower "
            f"(widths non-increasing from input_dim down to output_dim, e.g. '{input_dim}-"
            f"{max(output_dim, input_dim // 2)}')."
        )
    return widths + (output_dim,)


def validate(algorithm, arch, input_dim, output_dim, *, activation="lrelu", batchnorm=False, dropout=0.0,
             use_bias=True, weight_decay=0.0, problem_type="classification", trackers=(), **_ignored):
    """The layer widths (see `layer_widths`), or a ValueError naming what cannot be inverted or is not
    supported. (bw_init, init_fw_weight_aligned and output_activation do not apply and are ignored.)"""
    widths = layer_widths(algorithm, arch, input_dim, output_dim)
    checks.choice("activation", activation, ACTIVATIONS, label="Invalid", owner=f"{algorithm} (exactly invertible)")
    for name, value, default in (("batchnorm", batchnorm, False), ("dropout", dropout, 0.0),
                                 ("use_bias", use_bias, True), ("weight_decay", weight_decay, 0.0),
                                 ("problem_type", problem_type, "classification")):
        if value != default:
            raise ValueError(f"{algorithm} does not support {name}={value!r} (only {default!r}).")
    for tracker in trackers:
        checks.choice("tracker", tracker, TRACKERS, owner=algorithm)
    return widths


@keras.saving.register_keras_serializable(package="bpfree")
class InvertibleNetwork(RuleModel):
    """A stack of square `InvertibleDense` layers (module docstring) trained by an invertible rule
    (gait, tp, bp_inv), whose hparams are keywords here or `rule`."""

    def __init__(self, algorithm, arch, input_dim, output_dim, *, activation="lrelu", trackers=(), seed=None,
                 rule=None, **kwargs):
        self.rule = configure_rule(algorithm, rule, kwargs)
        options = {k: kwargs.pop(k) for k in ("batchnorm", "dropout", "use_bias", "weight_decay", "problem_type",
                                              "bw_init", "init_fw_weight_aligned", "output_activation")
                   if k in kwargs}
        super().__init__(**kwargs)
        widths = validate(self.rule.name, arch, input_dim, output_dim, activation=activation, trackers=trackers,
                          **options)
        self.algorithm, self.arch = self.rule.name, arch_string(arch)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.activation_name = activation
        self._trackers = tuple(trackers)
        self.seed = resolve_seed(seed)
        self.inv_layers = [InvertibleDense(linear=activation == "linear", orthogonal_init=self.rule.orthogonal_init,
                                           seed=seeds.layer_weights(self.seed, i + 1), name=f"invertible_{i + 1}")
                           for i in range(len(widths))]
        for layer, width in zip(self.inv_layers, widths):
            layer.build((None, width))
        self.tracker_metrics = [keras.metrics.Mean(name=n) for n in trackers_lib.metric_names(self)]
        self.built = True

    @classmethod
    def check_options(cls, rule, arch, input_dim, output_dim, **options):
        """Raises ValueError if `from_rule` would refuse these options; builds nothing."""
        options.pop("seed", None)
        validate(rule.name, arch, input_dim, output_dim, **options)

    @property
    def trackers(self):
        return self._trackers

    @property
    def weighted_layers(self):
        return list(self.inv_layers)

    def activities(self, x):
        """[x, h_1, ..., h_L]: each layer on the first k_l units of the one below."""
        hs = [x]
        for layer in self.inv_layers:
            hs.append(layer(hs[-1][:, : layer.units]))
        return hs

    def call(self, inputs, training=None):
        return self.activities(inputs)[-1][:, : self.output_dim]

    def output_target(self, h_out, y):
        return tf.concat([tf.cast(y, h_out.dtype), tf.stop_gradient(h_out[:, self.output_dim:])], axis=1)

    def global_loss(self, h_out, y):
        """The seed's ½ · mean_n Σ_units (h_L − t_L)²."""
        t = self.output_target(h_out, y)
        return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(h_out - t), axis=1))

    # ----------------------------------------------------------------------------------- training
    def default_loss(self):
        return "mse"

    def forward_pass(self, x, y, sample_weight=None, training=True):
        """Every layer on its detached input: the activities [h_1..h_L] and pre-activations [a_1..a_L]
        (with gradients to W_l, b_l only); the loss is the compiled one on the detached prediction (it
        carries no gradient: the rule's errors are the whole update; 0 before `compile`)."""
        hs, pre = [x], []
        for layer in self.inv_layers:
            a = tf.matmul(tf.stop_gradient(hs[-1][:, : layer.units]), layer.kernel) + layer.bias
            pre.append(a)
            hs.append(layer.activation(a))
        y_pred = tf.stop_gradient(hs[-1][:, : self.output_dim])
        loss = (self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
                if self.compiled else tf.constant(0.0, x.dtype))
        return ForwardPass(self, x, y, sample_weight, hs[1:], pre[-1], y_pred, loss, preactivations=pre)

    def bp_objective(self, x, y, sample_weight=None):
        return self.global_loss(self.activities(x)[-1], y) + self.rule.orthogonal_penalty(self)

    @property
    def bp_cosine_kernels(self):
        return [layer.kernel for layer in self.inv_layers]

    def get_config(self):
        return {"name": self.name, "algorithm": self.algorithm, "arch": self.arch, "input_dim": self.input_dim,
                "output_dim": self.output_dim, "activation": self.activation_name, "trackers": list(self.trackers),
                "seed": self.seed, "rule": self.rule.get_config()}
