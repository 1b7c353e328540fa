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

The rule turns the forward activities into per-layer errors δ_l (already multiplied by D_l); the train
step minimises the surrogate Σ_l Σ stop_gradient(δ_l) ⊙ a_l / N over detached inputs (a_l the
pre-activation), whose gradient is ∇W_l = h_{l−1}ᵀ δ_l / N, ∇b_l = mean_n δ_l — the seed's update —
plus the orthogonal regulariser λ Σ_{i≠j} ((W Wᵀ)_ij)². One forward pass, one gradient call.
"""

import keras
import tensorflow as tf

from bpfree import optimizers
from bpfree.layers.invertible import InvertibleDense
from bpfree.models.feedforward import parse_arch, replay_compile
from bpfree.rules import registry

ACTIVATIONS = ("lrelu", "linear")


def layer_widths(algorithm, arch, input_dim, output_dim):
    """The width of every invertible layer, the output layer last; a ValueError if `arch` cannot be
    inverted: square (every width = input_dim; the output layer is input_dim wide too) or tower
    (non-increasing widths ≤ input_dim; the output layer is output_dim wide, ≤ the last width)."""
    widths = parse_arch(arch)
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
             use_bias=True, weight_decay=0.0, problem_type="classification", trackers=()):
    """The layer widths (see `layer_widths`), or a ValueError naming what cannot be inverted or is not
    supported."""
    widths = layer_widths(algorithm, arch, input_dim, output_dim)
    if activation not in ACTIVATIONS:
        raise ValueError(f"Invalid activation {activation!r} for {algorithm}; valid: {', '.join(ACTIVATIONS)} "
                         "(exactly invertible).")
    for name, value, default in (("batchnorm", batchnorm, False), ("dropout", dropout, 0.0),
                                 ("use_bias", use_bias, True), ("weight_decay", weight_decay, 0.0),
                                 ("problem_type", problem_type, "classification")):
        if value != default:
            raise ValueError(f"{algorithm} does not support {name}={value!r} (only {default!r}).")
    for tracker in trackers:
        if tracker != "bp_cosine":
            raise ValueError(f"Unknown tracker {tracker!r} for {algorithm}; valid: bp_cosine.")
    return widths


@keras.saving.register_keras_serializable(package="bpfree")
class InvertibleNetwork(keras.Model):
    def __init__(self, algorithm, arch, input_dim, output_dim, *, activation="lrelu", orthogonal_init=True,
                 orthogonal_reg=0.0, gamma=1e-3, trackers=(), seed=None, batchnorm=False, dropout=0.0,
                 use_bias=True, weight_decay=0.0, bw_init="ortho", problem_type="classification", **kwargs):
        super().__init__(**kwargs)
        self.rule = registry.get(algorithm)
        widths = validate(algorithm, arch, input_dim, output_dim, activation=activation, batchnorm=batchnorm,
                          dropout=dropout, use_bias=use_bias, weight_decay=weight_decay, problem_type=problem_type,
                          trackers=trackers)
        self.algorithm, self.arch = algorithm, "-".join(map(str, parse_arch(arch)))
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.activation_name, self.orthogonal_init = activation, bool(orthogonal_init)
        self.orthogonal_reg, self.gamma = float(orthogonal_reg), float(gamma)
        self.trackers = tuple(trackers)
        self.seed = 0 if seed is None else int(seed)
        self.inv_layers = [InvertibleDense(linear=activation == "linear", orthogonal_init=orthogonal_init,
                                           seed=self.seed + i, name=f"invertible_{i + 1}")
                           for i in range(len(widths))]
        self.tracker_metrics = [keras.metrics.Mean(name=f"bp_cosine_{l}") for l in range(1, len(self.inv_layers) + 1)
                                ] if "bp_cosine" in self.trackers else []
        for layer, width in zip(self.inv_layers, widths):
            layer.build((None, width))
        self.built = True

    @property
    def weighted_layers(self):
        return list(self.inv_layers)

    @property
    def feedback_matrices(self):
        return []

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

    def orthogonal_penalty(self):
        if not self.orthogonal_reg:
            return 0.0
        total = 0.0
        for layer in self.inv_layers:
            gram = tf.matmul(layer.kernel, layer.kernel, transpose_b=True)
            total += tf.reduce_sum(tf.square(gram - tf.linalg.diag(tf.linalg.diag_part(gram))))
        return self.orthogonal_reg * total

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        from bpfree import metrics as bpfree_metrics

        super().compile(optimizer=optimizer, loss=loss or "mse", metrics=bpfree_metrics.resolve(metrics), **kwargs)

    def rule_gradients(self, x, y):
        """(gradients of the rule for every trainable variable, the forward activities)."""
        with tf.GradientTape() as tape:
            hs, pre = [x], []
            for layer in self.inv_layers:
                a = tf.matmul(tf.stop_gradient(hs[-1][:, : layer.units]), layer.kernel) + layer.bias
                pre.append(a)
                hs.append(layer.activation(a))
            deltas = self.rule.layer_errors(self, [tf.stop_gradient(h) for h in hs], y)
            n = tf.cast(tf.shape(x)[0], x.dtype)
            objective = sum(tf.reduce_sum(tf.stop_gradient(tf.cast(d, a.dtype)) * a) for d, a in zip(deltas, pre)) / n
            objective += self.orthogonal_penalty()
        return tape.gradient(objective, self.trainable_variables), hs

    def bp_gradients(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.global_loss(self.activities(x)[-1], y) + self.orthogonal_penalty()
        return tape.gradient(loss, self.trainable_variables)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grads, hs = self.rule_gradients(x, y)
        bp = self.bp_gradients(x, y) if self.tracker_metrics else None
        optimizers.apply_after(self.optimizer, grads, self.trainable_variables, after=(hs, bp))
        if self.tracker_metrics:
            from bpfree.trackers import cosine

            for l, layer in enumerate(self.inv_layers):
                i = next(k for k, v in enumerate(self.trainable_variables) if v is layer.kernel)
                self.tracker_metrics[l].update_state(cosine(grads[i], bp[i]))
        y_pred = hs[-1][:, : self.output_dim]
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        logs = super().test_step(data)
        names = {m.name for m in self.tracker_metrics}
        return {k: v for k, v in logs.items() if k not in names}

    def get_config(self):
        return {"name": self.name, "algorithm": self.algorithm, "arch": self.arch, "input_dim": self.input_dim,
                "output_dim": self.output_dim, "activation": self.activation_name,
                "orthogonal_init": self.orthogonal_init, "orthogonal_reg": self.orthogonal_reg,
                "gamma": self.gamma, "trackers": list(self.trackers), "seed": self.seed}

    def compile_from_config(self, config):
        replay_compile(self, config)
