"""`FFNetwork`: a stack of Dense layers trained by Forward-Forward (`bpfree.rules.ff` has the equations).

The input of layer 1 is [x, onehot(label)] (input_dim + output_dim features); every layer reads its
input detached and normalised to unit length. Training (`train_step`): positive data carries the true
label, negative data a wrong one drawn from the model's seed generator; the rule's per-layer goodness
losses are summed, one gradient call, one optimizer update. `call(x)` runs x with every label embedded
(one batch of output_dim · N rows) and returns softmax over labels of the total goodness, so the
compiled loss (cross-entropy by default), ``error_rate``, `evaluate` and `predict` read it like class
probabilities; the reported training ``loss`` is that loss too, on the batch before the update, and
``goodness_loss_l`` (training only) is layer l's Forward-Forward loss. Sample weights weight the
reported loss and metrics, not the goodness losses.
"""

import keras
import tensorflow as tf

from bpfree import checks, optimizers, seeds
from bpfree.arch import arch_string, parse_arch
from bpfree.layers import ACTIVATIONS, activation_function
from bpfree.models.base import RuleModel, resolve_seed
from bpfree.models.rule_options import configure_rule


def validate(rule, arch, input_dim, output_dim, *, activation="relu", batchnorm=False, dropout=0.0, use_bias=True,
             weight_decay=0.0, problem_type="classification", trackers=(), init_fw_weight_aligned=False,
             output_activation=None, bw_init=None, seed=None):
    """The hidden widths, or a one-line ValueError naming what Forward-Forward does not support and what
    it does. (bw_init does not apply: there is no feedback matrix.) Bounded activations (tanh, sigmoid)
    are allowed, though their goodness never exceeds 1: with them, pick a threshold below 1."""
    widths = parse_arch(arch, owner=rule.name)
    name = rule.name
    checks.choice("activation", activation, ACTIVATIONS, label="Unknown", owner=name)
    for what, value, default in (("batchnorm", batchnorm, False), ("dropout", dropout, 0.0),
                                 ("problem_type", problem_type, "classification"),
                                 ("init_fw_weight_aligned", init_fw_weight_aligned, False)):
        if value != default:
            raise ValueError(f"{name} does not support {what}={value!r} (only {default!r}).")
    if output_activation not in (None, "softmax"):
        raise ValueError(f"{name} does not support output_activation={output_activation!r} (only 'softmax', "
                         "over the labels' total goodness).")
    checks.number("weight_decay", weight_decay, lambda v: v >= 0, "must be ≥ 0", owner=name)
    for tracker in trackers:
        checks.choice("tracker", tracker, (), owner=name)
    if int(input_dim) <= 0 or int(output_dim) < 2:
        raise ValueError(f"{name} needs input_dim ≥ 1 and at least 2 classes; got {input_dim} and {output_dim}.")
    return widths


@keras.saving.register_keras_serializable(package="bpfree")
class FFNetwork(RuleModel):
    """Dense layers trained by Forward-Forward (module docstring); the rule's hparams are keywords here
    or `rule`."""

    def __init__(self, algorithm, arch, input_dim, output_dim, *, activation="relu", use_bias=True,
                 weight_decay=0.0, seed=None, rule=None, **kwargs):
        self.rule = configure_rule(algorithm, rule, kwargs)
        options = {k: kwargs.pop(k) for k in ("batchnorm", "dropout", "problem_type", "trackers", "bw_init",
                                              "init_fw_weight_aligned", "output_activation") if k in kwargs}
        super().__init__(**kwargs)
        widths = validate(self.rule, arch, input_dim, output_dim, activation=activation, use_bias=use_bias,
                          weight_decay=weight_decay, **options)
        self.algorithm, self.arch = self.rule.name, arch_string(widths)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.activation_name = activation
        self.use_bias = bool(use_bias)
        self.weight_decay = float(weight_decay)
        self.seed = resolve_seed(seed)
        self.ff_layers = [keras.layers.Dense(units, activation=activation_function(activation), use_bias=self.use_bias,
                                             kernel_initializer=keras.initializers.GlorotUniform(
                                                 seed=seeds.layer_weights(self.seed, l)),
                                             name=f"ff_{l}")
                          for l, units in enumerate(widths, start=1)]
        width = self.input_dim + self.output_dim
        for layer in self.ff_layers:
            layer.build((None, width))
            width = layer.units
        self.negative_labels = keras.random.SeedGenerator(seeds.ff_negative_labels(self.seed))
        self.rule_metrics = [keras.metrics.Mean(name=f"goodness_loss_{l}") for l in range(1, len(widths) + 1)]
        self.built = True

    @classmethod
    def check_options(cls, rule, arch, input_dim, output_dim, **options):
        """Raises ValueError if `from_rule` would refuse these options; builds nothing."""
        validate(rule, arch, input_dim, output_dim, **options)

    @property
    def weighted_layers(self):
        return list(self.ff_layers)

    # ----------------------------------------------------------------------------------- forward
    def embed(self, x, labels):
        """[x, onehot(labels)]: the input of layer 1."""
        x = keras.ops.convert_to_tensor(x, self.compute_dtype)
        return keras.ops.concatenate([x, keras.ops.one_hot(labels, self.output_dim, dtype=x.dtype)], axis=-1)

    def activities(self, inputs):
        """[h_1, ..., h_L], each layer on its detached, normalised input."""
        hs, h = [], inputs
        for layer in self.ff_layers:
            h = layer(self.rule.normalise(keras.ops.stop_gradient(h)))
            hs.append(h)
        return hs

    def total_goodness(self, x):
        """G[n, c] = Σ_l g_l(h_l) for x_n with label c embedded."""
        n = keras.ops.shape(x)[0]
        labels = keras.ops.repeat(keras.ops.arange(self.output_dim), n)  # c-major: rows c·N .. c·N + N − 1
        tiled = keras.ops.tile(keras.ops.convert_to_tensor(x, self.compute_dtype), (self.output_dim, 1))
        g = sum(self.rule.goodness(h) for h in self.activities(self.embed(tiled, labels)))
        return keras.ops.transpose(keras.ops.reshape(g, (self.output_dim, n)))

    def call(self, inputs, training=None):
        return keras.ops.softmax(self.total_goodness(inputs), axis=-1)

    # ----------------------------------------------------------------------------------- training
    def default_loss(self):
        return "categorical_crossentropy"

    def class_labels(self, y):
        y = keras.ops.convert_to_tensor(y)
        if len(y.shape) >= 2 and y.shape[-1] == self.output_dim:
            return keras.ops.argmax(y, axis=-1)
        return keras.ops.cast(keras.ops.reshape(y, (-1,)), "int32")

    def wrong_labels(self, labels):
        """A wrong label per example, uniform among the output_dim − 1 others (seeded)."""
        shift = keras.random.randint(keras.ops.shape(labels), 1, self.output_dim, seed=self.negative_labels,
                                     dtype="int32")
        return (keras.ops.cast(labels, "int32") + shift) % self.output_dim

    def goodness_losses(self, x, labels, wrong):
        """[ℓ_1, ..., ℓ_L]: every layer's Forward-Forward loss on one batch (rule.layer_loss)."""
        n = keras.ops.shape(x)[0]
        both = keras.ops.concatenate([self.embed(x, labels), self.embed(x, wrong)], axis=0)
        losses = []
        for h in self.activities(both):
            g = self.rule.goodness(h)
            losses.append(self.rule.layer_loss(g[:n], g[n:]))
        return losses

    def decay(self):
        """λ Σ_l ‖W_l‖² (Keras's L2 on kernels)."""
        if not self.weight_decay:
            return 0.0
        return self.weight_decay * sum(keras.ops.sum(keras.ops.square(layer.kernel)) for layer in self.ff_layers)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        labels = self.class_labels(y)
        wrong = self.wrong_labels(labels)
        with tf.GradientTape() as tape:
            losses = self.goodness_losses(x, labels, wrong)
            objective = self.optimizer.scale_loss(sum(losses) + self.decay())
        variables = self.trainable_variables
        grads = tape.gradient(objective, variables)
        y_pred = keras.ops.stop_gradient(self(x, training=False))
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        optimizers.apply_after(self.optimizer, grads, variables, after=(y_pred, loss, losses))
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        for metric, value in zip(self.rule_metrics, losses):
            metric.update_state(value)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "algorithm": self.algorithm, "arch": self.arch, "input_dim": self.input_dim,
                "output_dim": self.output_dim, "activation": self.activation_name, "use_bias": self.use_bias,
                "weight_decay": self.weight_decay, "seed": self.seed, "rule": self.rule.get_config()}
