"""A stack of GLE layers run in continuous time: `GLENetwork` and its builder for the rule registry.

Every dt step t of a batch (the seed's `GLEAbstractNet.forward`, `plastic_e2e.py`), from the old state
of every layer (`bpfree.layers.gle` for one layer's equations):

    output error    e_top = β (onehot(y) − softmax(r_L))   (loss "ce")   or   β (y − r_L)   ("mse")
    layer l         r_in = x_t (l = 0) or r_{l−1};  e_in = e_top (l = L) or e_bottom_{l+1}
                    (new state_l, ∇W_l, ∇b_l, ∇τ_m,l) = gle_step(...)
    commit          all layers take their new state together (a one-step delay per layer each way)
    optimiser       one update with the GLE gradients, at every dt step
    output          logits_t = r_L (the old r, as the seed returns it); loss_t = CE(logits_t, y) or MSE

The prediction is the time average of logits_t (its argmax is the seed's argmax Σ_t logits_t); the
reported loss is the mean over steps of loss_t (the seed's logged per-step loss). The state persists
from batch to batch (the seed never resets it), tiled/narrowed to the batch size; layers built with
``stateful=False`` start every batch from zero (the seed's static LagNet). Layers that are not
trainable run the forward dynamics only (no error neurons, no error passed down).

Evaluation (`call`, `evaluate`, `predict`) runs the forward dynamics only (ê = 0), starting from the
stored training state, and does not write the state back. `simulate(x, y=None, learn=False)` returns a
batch's trajectory (r_L and the loss at every step), learning as `train_step` does when asked. (The
seed also runs its error neurons at test time with a zero output error; with γ = 0 they cannot affect
the output.)

Speed: a batch's whole time loop is one XLA-compiled `tf.while_loop` (the state in loop variables,
read once before and written once after the loop) that calls `optimizer.apply` with the GLE gradients
at every step (any Keras optimizer); XLA keeps the variable updates inside the compiled loop.
bench/gle_speed.py compares it with a step per Python call and with the loop without XLA.
"""

import keras
import numpy as np
import tensorflow as tf

from bpfree import checks, optimizers, seeds
from bpfree.arch import check_problem_type, parse_arch
from bpfree.layers.gle import ACTIVATIONS, TAU_PROFILES, GLEDense, GLEParams, gle_forward_step, gle_step
from bpfree.models.base import RuleModel, resolve_seed

LOSSES = ("ce", "mse")
INPUT_MODES = ("sequence", "static")


@keras.saving.register_keras_serializable(package="bpfree")
class GLENetwork(RuleModel):
    """A stack of `GLEDense` layers trained by GLE in continuous time (module docstring).

    Args:
        gle_layers: the `GLEDense` layers (or their serialised configs), bottom to top.
        input_dim: features per time step.
        loss: "ce" (the output layer's r are logits) or "mse".
        beta: output error scale β.
        input_mode: "sequence": x is (batch, T, input_dim), or (batch, T) when input_dim is 1, fed one
            step per dt; "static": x is (batch, input_dim), held for `steps` dt steps.
        steps: dt steps per sample in static mode.
        weight_decay: L2 added to the kernel gradients, ∇W += λ W.
        jit_compile: compile the time loop with XLA.
    """

    def __init__(self, gle_layers, input_dim, *, loss="ce", beta=1.0, input_mode="sequence", steps=None,
                 weight_decay=0.0, jit_compile=True, **kwargs):
        super().__init__(**kwargs)
        checks.choice("GLE loss", loss, LOSSES)
        checks.choice("input_mode", input_mode, INPUT_MODES)
        if input_mode == "static" and (steps is None or int(steps) <= 0):
            raise ValueError(f"input_mode 'static' needs a positive number of dt steps per sample; "
                             f"got steps={steps!r}.")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay {weight_decay!r}: must be ≥ 0.")
        layers = [keras.saving.deserialize_keras_object(l) if isinstance(l, dict) else l for l in gle_layers]
        if not layers or not all(isinstance(l, GLEDense) for l in layers):
            raise ValueError("gle_layers must be a non-empty list of GLEDense layers.")
        dts = {l.dt for l in layers}
        if len(dts) != 1:
            raise ValueError(f"All GLE layers must share one dt; got {sorted(dts)}.")
        self.gle_layers = layers
        self.input_dim = int(input_dim)
        self.loss_name, self.beta = loss, float(beta)
        self.input_mode, self.steps = input_mode, None if steps is None else int(steps)
        self.weight_decay = float(weight_decay)
        self.jit_loop = bool(jit_compile)
        width = self.input_dim
        for layer in layers:
            if not layer.built:
                layer.build((layer.state_batch_size, width))
            elif layer.input_dim != width:
                raise ValueError(f"Layer {layer.name} expects {layer.input_dim} inputs, the layer below gives {width}.")
            width = layer.units
        self.output_dim = width
        self.built = True
        self._loops = {}

    @property
    def dt(self):
        return self.gle_layers[0].dt

    # ----------------------------------------------------------------------------------- state
    def reset_state(self, batch_size=None):
        """Zeroes every layer's state (re-sized to `batch_size` if given; compiled functions re-trace)."""
        for layer in self.gle_layers:
            layer.reset_state(batch_size)
        if batch_size is not None:
            self._loops = {}
            self.train_function = self.test_function = self.predict_function = None

    def _initial_states(self, n):
        return [layer.state(n) if layer.stateful else layer.zero_state(n) for layer in self.gle_layers]

    # ----------------------------------------------------------------------------------- the time loop
    def _inputs(self, x):
        """(time-major inputs or None, number of steps, static input or None)."""
        x = tf.convert_to_tensor(x, self.compute_dtype)
        if self.input_mode == "static":
            if x.shape.rank != 2 or x.shape[-1] != self.input_dim:
                raise ValueError(f"input_mode 'static' expects x of shape (batch, {self.input_dim}); got {x.shape}.")
            return None, self.steps, x
        if x.shape.rank == 2 and self.input_dim == 1:
            x = x[:, :, None]
        if x.shape.rank != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"input_mode 'sequence' expects x of shape (batch, T, {self.input_dim})"
                             f"{' or (batch, T)' if self.input_dim == 1 else ''}; got {x.shape}.")
        return tf.transpose(x, (1, 0, 2)), tf.shape(x)[1], None

    def _targets(self, y):
        y = tf.convert_to_tensor(y)
        if self.loss_name == "ce" and y.shape.rank == 1:
            y = tf.one_hot(tf.cast(y, "int32"), self.output_dim)
        y = tf.cast(y, self.compute_dtype)
        return tf.transpose(y, (1, 0, 2)) if y.shape.rank == 3 else y  # per-step targets → time-major

    def output_error(self, r_out, y):
        """(loss per example, β-scaled output error) at the old output rate r_L."""
        if self.loss_name == "ce":
            log_p = tf.nn.log_softmax(r_out)
            return -tf.reduce_sum(y * log_p, axis=-1), self.beta * (y - tf.exp(log_p))
        diff = y - r_out
        return tf.reduce_mean(tf.square(diff), axis=-1), self.beta * diff

    def _loop(self, kind, trace=False):
        key = (kind, bool(trace))
        if key not in self._loops:
            fn = {"eval": self._eval_loop, "train": self._train_loop}[kind]
            self._loops[key] = tf.function(lambda x, y: fn(x, y, trace=trace), jit_compile=self.jit_loop,
                                           autograph=False)
        return self._loops[key]

    def _trace_init(self, trace, steps, n):
        if not trace:
            return ()
        return (tf.TensorArray(self.compute_dtype, size=steps, element_shape=(None, self.output_dim)),
                tf.TensorArray(self.compute_dtype, size=steps, element_shape=()))

    @staticmethod
    def _trace_write(tr, t, r_top, loss_t):
        return (tr[0].write(t, r_top), tr[1].write(t, tf.reduce_mean(loss_t))) if tr else tr

    @staticmethod
    def _trace_result(tr):
        return {"outputs": tf.transpose(tr[0].stack(), (1, 0, 2)), "losses": tr[1].stack()} if tr else None

    def _eval_loop(self, x, y, trace=False):
        """Forward dynamics only: (time-mean output, mean per-step loss or 0, trace or None)."""
        xs, steps, x_static = self._inputs(x)
        n = tf.shape(x)[0]
        ys = None if y is None else self._targets(y)
        layers = self.gle_layers
        params = [layer.params() for layer in layers]
        params = [GLEParams(*(None if p is None else tf.convert_to_tensor(p) for p in ps)) for ps in params]

        def body(t, states, out_sum, loss_sum, tr):
            r_top = states[-1].r
            loss_t = tf.zeros((n,), self.compute_dtype)
            if ys is not None:
                loss_t, _ = self.output_error(r_top, ys[t] if ys.shape.rank == 3 else ys)
                loss_sum += tf.reduce_mean(loss_t)
            new = []
            for l, layer in enumerate(layers):
                r_in = (x_static if xs is None else xs[t]) if l == 0 else states[l - 1].r
                new.append(gle_forward_step(params[l], states[l], r_in, layer.config))
            return t + 1, new, out_sum + r_top, loss_sum, self._trace_write(tr, t, r_top, loss_t)

        init = (tf.constant(0), self._initial_states(n), tf.zeros((n, self.output_dim), self.compute_dtype),
                tf.constant(0.0, self.compute_dtype), self._trace_init(trace, steps, n))
        _, _, out_sum, loss_sum, tr = tf.while_loop(lambda t, *_: t < steps, body, init)
        steps_f = tf.cast(steps, self.compute_dtype)
        return out_sum / steps_f, loss_sum / steps_f, self._trace_result(tr)

    def _trainable_slots(self):
        """[(layer index, field name, variable)] of every variable GLE trains, in a fixed order."""
        slots = []
        for l, layer in enumerate(self.gle_layers):
            if not layer.trainable:
                continue
            for field in ("kernel", "bias", "tau_m"):
                var = getattr(layer, field)
                if var is not None and var.trainable:
                    slots.append((l, field, var))
        return slots

    def _train_loop(self, x, y, trace=False):
        """The whole time loop of one batch with an optimizer step every dt: (time-mean output, mean loss,
        trace or None)."""
        xs, steps, x_static = self._inputs(x)
        n = tf.shape(x)[0]
        ys = self._targets(y)
        layers = self.gle_layers
        slots = self._trainable_slots()
        learns = [layer.trainable for layer in layers]
        fixed = [GLEParams(*(None if p is None else tf.convert_to_tensor(p) for p in layer.params()))
                 for layer in layers]

        def current_params():
            """The fixed parameters with every trained variable read now (after the last step's update)."""
            params = [p._asdict() for p in fixed]
            for l, field, var in slots:
                params[l][field] = tf.convert_to_tensor(var)
            return [GLEParams(**p) for p in params]

        def body(t, states, out_sum, loss_sum, tr):
            params = current_params()
            r_top = states[-1].r
            loss_t, e_top = self.output_error(r_top, ys[t] if ys.shape.rank == 3 else ys)
            new, grads = [], {}
            for l, layer in enumerate(layers):
                r_in = (x_static if xs is None else xs[t]) if l == 0 else states[l - 1].r
                if not learns[l]:
                    new.append(gle_forward_step(params[l], states[l], r_in, layer.config))
                    continue
                e_in = e_top if l == len(layers) - 1 else states[l + 1].e_bottom
                state, g = gle_step(params[l], states[l], r_in, e_in, layer.config,
                                    need_e_bottom=l > 0 and learns[l - 1])
                new.append(state)
                grads[l] = g._asdict()
            grad_list = []
            for l, field, _ in slots:
                g = grads[l][field]
                if field == "kernel" and self.weight_decay:
                    g = g + self.weight_decay * params[l].kernel
                grad_list.append(g)
            optimizers.apply_after(self.optimizer, grad_list, [var for _, _, var in slots],
                                   after=(new, r_top, loss_t))
            return (t + 1, new, out_sum + r_top, loss_sum + tf.reduce_mean(loss_t),
                    self._trace_write(tr, t, r_top, loss_t))

        init = (tf.constant(0), self._initial_states(n), tf.zeros((n, self.output_dim), self.compute_dtype),
                tf.constant(0.0, self.compute_dtype), self._trace_init(trace, steps, n))
        _, states, out_sum, loss_sum, tr = tf.while_loop(lambda t, *_: t < steps, body, init)
        for layer, state in zip(layers, states):
            if layer.stateful:
                layer.assign_state(state)
        steps_f = tf.cast(steps, self.compute_dtype)
        return out_sum / steps_f, loss_sum / steps_f, self._trace_result(tr)

    # ----------------------------------------------------------------------------------- Keras
    def call(self, inputs, training=None):
        """The time-mean output over the sequence (forward dynamics only; the state is not written back)."""
        return self._loop("eval")(inputs, None)[0]

    def simulate(self, x, y=None, learn=False):
        """Runs one batch and returns its trajectory: {"outputs": r_L at every step (batch, T, out),
        "losses": the batch-mean loss at every step (T,) (zeros without `y`)}. ``learn=True`` trains as
        `train_step` does (an optimizer step every dt; the state is written back; needs `y` and `compile`)."""
        if learn:
            if y is None or self.optimizer is None:
                raise ValueError("simulate(learn=True) needs targets y and a compiled model.")
            return self._loop("train", trace=True)(x, y)[2]
        return self._loop("eval", trace=True)(x, y)[2]

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """As `RuleModel.compile`; the loss is the network's own (``loss`` must be None). The optimizer is
        built at once (the time loop updates it from inside)."""
        if loss is not None:
            raise ValueError(f"GLENetwork computes its own loss ({self.loss_name!r}, set at construction); "
                             f"compile got loss={loss!r}.")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.optimizer.build(self.trainable_variables)
        self._loops = {}

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, loss, _ = self._loop("train")(x, y)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, loss, _ = self._loop("eval")(x, y)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._loop("eval")(x, None)[0]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y = tf.convert_to_tensor(y)
        if self.loss_name == "ce" and y.shape.rank == 1:
            y = tf.one_hot(tf.cast(y, "int32"), self.output_dim)
        if y.shape.rank == 3:
            y = tf.reduce_mean(tf.cast(y, y_pred.dtype), axis=1)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "gle_layers": [keras.saving.serialize_keras_object(l) for l in self.gle_layers],
                "input_dim": self.input_dim, "loss": self.loss_name, "beta": self.beta,
                "input_mode": self.input_mode, "steps": self.steps, "weight_decay": self.weight_decay,
                "jit_compile": self.jit_loop}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("fuse_optimizer", None)  # models saved before the hand-fused Adam was removed
        return cls(**config)

    # ----------------------------------------------------------------------------------- from a rule
    @classmethod
    def from_rule(cls, rule, arch, input_dim, output_dim, **options):
        """The network of a continuous-time rule (`bpfree.rules.gle`) from `build_model`'s options: arch,
        activation, use_bias, weight_decay, problem_type ("classification" → CE on the output rates,
        "reconstruction" → MSE) and seed; bw_init does not apply (errors go through Wᵀ); batchnorm,
        dropout and trackers are refused."""
        network, rest = cls._split_options(rule, options)
        return build_gle_network(arch, input_dim, output_dim, **network, **rule.network_options(), **rest)

    @classmethod
    def check_options(cls, rule, arch, input_dim, output_dim, **options):
        """Raises ValueError if `from_rule` would refuse these options; builds nothing."""
        parse_arch(arch, owner=rule.name)
        cls._split_options(rule, options)

    @staticmethod
    def _split_options(rule, options):
        options = dict(options)
        activation = options.pop("activation", "tanh")
        checks.choice("activation", activation, ACTIVATIONS, label="Invalid", owner=rule.name)
        for label, default in (("batchnorm", False), ("dropout", 0.0)):
            value = options.pop(label, default)
            if value != default:
                raise ValueError(f"{rule.name} does not support {label}={value!r} (only {default!r}).")
        trackers = tuple(options.pop("trackers", ()))
        if trackers:
            raise ValueError(f"{rule.name} supports no trackers; got {', '.join(trackers)}.")
        problem_type = check_problem_type(options.pop("problem_type", "classification"))
        for unused in ("bw_init", "init_fw_weight_aligned", "output_activation"):
            options.pop(unused, None)
        network = dict(activation=activation, use_bias=options.pop("use_bias", True),
                       weight_decay=options.pop("weight_decay", 0.0), seed=options.pop("seed", None),
                       loss="ce" if problem_type == "classification" else "mse")
        return network, options


# --------------------------------------------------------------------------------------- builder


def hidden_time_constants(width, tau, dt, profile):
    """(τ_m, τ_r) per unit of a hidden layer. "mixed" is the seed's E2E split: the first ⌈2n/3⌉ units are
    leaky integrators (τ_r = dt), half of them with τ_m = τ/2, the rest τ_m = τ; the remaining ⌊n/3⌋ are
    LE units (τ_m = τ_r = τ). For n = 53: 18 × (τ/2, dt), 18 × (τ, dt), 17 × (τ, τ). "lag": all (τ, dt);
    "le": all (τ, τ)."""
    checks.choice("tau_profile", profile, TAU_PROFILES)
    tau_m = np.full(width, float(tau))
    tau_r = np.full(width, float(tau))
    if profile == "lag":
        tau_r[:] = dt
    elif profile == "mixed":
        slow = width - width // 3
        tau_r[:slow] = dt
        tau_m[: slow // 2] = tau / 2
    return [float(v) for v in tau_m], [float(v) for v in tau_r]


def build_gle_network(arch, input_dim, output_dim, *, activation="tanh", input_activation=None, mode="gle",
                      dt=0.2, tau=1.2, tau_profile="mixed", gamma=0.0, beta=1.0, loss="ce", use_bias=True,
                      input_mode="static", steps=30, weight_decay=0.0, state_batch_size=1, seed=None,
                      name=None, **network_kwargs):
    """A `GLENetwork`: GLEDense(input_dim→w_1) [input_activation], GLEDense(w_i→w_{i+1}) [activation],
    GLEDense(w_L→output_dim) linear with τ_m = τ_r = τ. Hidden time constants from `tau_profile`
    (`hidden_time_constants`); mode "le" forces τ_r = τ_m everywhere."""
    widths = parse_arch(arch, owner="GLE")
    if not tau >= dt:
        raise ValueError(f"tau {tau!r} must be ≥ dt = {dt} (explicit Euler).")
    for label, act in (("activation", activation), ("input_activation", input_activation)):
        if act is not None:
            checks.choice(label, act, ACTIVATIONS, label="Invalid", owner="GLE")
    seed = resolve_seed(seed)
    common = dict(dt=dt, gamma=gamma, mode=mode, use_bias=use_bias, state_batch_size=state_batch_size)
    layers = []
    for i, width in enumerate(widths):
        tau_m, tau_r = hidden_time_constants(width, tau, dt, "le" if mode == "le" else tau_profile)
        act = (input_activation or activation) if i == 0 else activation
        layers.append(GLEDense(width, tau_m=tau_m, tau_r=None if mode == "le" else tau_r, activation=act,
                               seed=seeds.gle_layer(seed, i), name=f"gle_{i + 1}", **common))
    layers.append(GLEDense(output_dim, tau_m=tau, tau_r=None, activation="linear",
                           seed=seeds.gle_layer(seed, len(widths)), name="gle_out", **common))
    return GLENetwork(layers, input_dim, loss=loss, beta=beta, input_mode=input_mode, steps=steps,
                      weight_decay=weight_decay, name=name, **network_kwargs)
