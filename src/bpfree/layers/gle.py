"""GLE: one explicit-Euler step of Generalized Latent Equilibrium dynamics for a batch.

"Backpropagation through space, time and the brain" (Ellenberger, Haider, Jordan, Max, Jaras,
Kriener, Benitez, Petrovici; arXiv 2403.16933), as discretised in `unibe-cns/gle-code`
(`lib/dynamics.py`, `lib/layers.py`). Per layer and unit: membrane u, error neuron v, rate r = φ(ŭ),
r' = φ'(ŭ), and the error sent down e_bottom. Per-unit time constants τ_m, τ_r ≥ dt. Inputs at step t:
r_in (the previous step's r of the layer below, or the input x_t) and e_in (the previous step's
e_bottom of the layer above, or the output error β(target − r_L) / β(onehot − softmax(r_L))).
Keras kernel W has shape (in, units), so s = r_in W + b. One step, all from the *old* state:

    1. ε  = e_in ⊙ r'                                   (r' of the previous step)
    2. s  = r_in W + b
    3. prospective errors (mode "gle"):  v̇ = (ε − v)/τ_r,  v ← v + dt v̇,  ê = v_old + τ_m v̇
       instantaneous errors ("bp", "le"):  ê = v = ε
    4. u̇  = (s + γ ê − u)/τ_m,  u ← u + dt u̇,  ŭ = u_old + τ_r u̇
    5. plasticity (an optimizer step at every dt):
         ∇W = −mean_n(r_inᵀ ê) = −r_inᵀ ê / N,  ∇b = −mean_n ê,  ∇τ_m = mean_n(ê ⊙ u̇) (learnable τ_m)
    6. e_bottom = ê Wᵀ                                  (φ' of the layer below is applied there, step 1)
    7. r = φ(ŭ),  r' = φ'(ŭ)

Representation neurons integrate with τ_m and look ahead with τ_r; error neurons integrate with τ_r
and look ahead with τ_m. Mode "le" sets τ_r = τ_m, so ŭ = s + γ ê exactly (latent equilibrium);
τ_r = dt gives ŭ = u_new (a leaky integrator). The forward dynamics alone (ê = 0) are steps 2, 4, 7.

API (the model in `bpfree.models.gle` and the teacher–student experiments build on it):

- pure functions of tensors: ``gle_terms(params, state, r_in, e_in, config) -> GLETerms`` (every
  intermediate), ``gle_step(params, state, r_in, e_in, config) -> (new_state, grads)`` and
  ``gle_forward_step(params, state, r_in, config) -> new_state`` (ê = 0; plain differentiable TF ops,
  for truncated BPTT), with ``GLEParams(kernel, bias, tau_m, tau_r)``, ``GLEState(u, v, r, r_prime,
  e_bottom)``, ``GLEGrads(kernel, bias, tau_m)`` and the static ``GLEConfig(dt, gamma, activation,
  prospective, learn_tau)``;
- `GLEDense`, a Keras layer holding W, b, τ_m (trainable iff ``learn_tau``, clamped at
  ``tau_m_min``), τ_r, and the state as non-trainable variables of shape (state_batch_size, ·). Its
  ``step(r_in, e_in, state=None)`` returns ``(new_state, grads)`` without committing;
  ``assign_state(new_state)`` commits; ``grads_and_vars(grads)`` pairs the gradients with the
  variables for ``optimizer.apply``; ``forward_step(r_in, state=None)`` is the differentiable
  forward-only step; ``reset_state(batch_size=None)`` zeroes (and optionally resizes) the state;
  ``call(r_in)`` / ``call([r_in, e_in])`` runs one step, commits it and returns the new r.
"""

import dataclasses
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from bpfree import checks, seeds

ACTIVATIONS = ("linear", "identity", "tanh", "sigmoid", "softplus", "relu")
# How hidden units split into time-constant groups (`bpfree.models.gle.hidden_time_constants`).
TAU_PROFILES = ("mixed", "lag", "le")
MODES = ("gle", "le", "bp", "instantaneous")


def phi_and_derivative(name):
    """(φ, φ') for an activation name; φ' of softplus is the sigmoid (as in the seed)."""
    if name in ("linear", "identity"):
        return (lambda x: x), tf.ones_like
    if name == "tanh":
        return tf.tanh, lambda x: 1.0 - tf.square(tf.tanh(x))
    if name == "sigmoid":
        return tf.sigmoid, lambda x: tf.sigmoid(x) * (1.0 - tf.sigmoid(x))
    if name == "softplus":
        return tf.nn.softplus, tf.sigmoid
    if name == "relu":
        return tf.nn.relu, lambda x: tf.cast(x > 0, x.dtype)
    raise checks.unknown("GLE activation", name, ACTIVATIONS)


def phi_and_derivative_fused(name):
    """φ and φ' together, sharing work (one tanh / one sigmoid): x -> (φ(x), φ'(x))."""
    if name == "tanh":
        def f(x):
            t = tf.tanh(x)
            return t, 1.0 - t * t
        return f
    if name == "sigmoid":
        def f(x):
            s = tf.sigmoid(x)
            return s, s * (1.0 - s)
        return f
    phi, dphi = phi_and_derivative(name)
    return lambda x: (phi(x), dphi(x))


class GLEParams(NamedTuple):
    kernel: object  # (in, units)
    bias: object  # (units,) or None
    tau_m: object  # (units,)
    tau_r: object  # (units,)


class GLEState(NamedTuple):
    u: object  # (batch, units)
    v: object  # (batch, units)
    r: object  # (batch, units)
    r_prime: object  # (batch, units)
    e_bottom: object  # (batch, in)


class GLEGrads(NamedTuple):
    kernel: object
    bias: object  # None without a bias
    tau_m: object  # None unless learn_tau


class GLETerms(NamedTuple):
    """Every intermediate of one step (for tests and logging)."""

    eps: object
    s: object
    v_dot: object
    e_hat: object
    u_dot: object
    u_prospective: object
    state: GLEState


@dataclasses.dataclass(frozen=True)
class GLEConfig:
    """The static (trace-time) settings of a step. `prospective` False means ê = v = ε."""

    dt: float
    gamma: float = 0.0
    activation: str = "linear"
    prospective: bool = True
    learn_tau: bool = False

    def __post_init__(self):
        phi_and_derivative(self.activation)
        if not self.dt > 0:
            raise checks.invalid("dt", self.dt, "must be > 0")


def zero_state(batch_size, input_dim, units, dtype="float32"):
    z = tf.zeros((batch_size, units), dtype)
    return GLEState(z, z, z, z, tf.zeros((batch_size, input_dim), dtype))


def gle_terms(params, state, r_in, e_in, config, need_e_bottom=True):
    """One Euler step (steps 1–4, 6, 7 of the module docstring); returns every intermediate."""
    eps = e_in * state.r_prime
    s = tf.matmul(r_in, params.kernel)
    if params.bias is not None:
        s = s + params.bias
    if config.prospective:
        v_dot = (eps - state.v) / params.tau_r
        v = state.v + config.dt * v_dot
        e_hat = state.v + params.tau_m * v_dot
    else:
        v_dot = tf.zeros_like(eps)
        v = e_hat = eps
    drive = s + config.gamma * e_hat if config.gamma else s
    u_dot = (drive - state.u) / params.tau_m
    u = state.u + config.dt * u_dot
    u_prospective = state.u + params.tau_r * u_dot
    r, r_prime = phi_and_derivative_fused(config.activation)(u_prospective)
    e_bottom = tf.matmul(e_hat, params.kernel, transpose_b=True) if need_e_bottom else tf.zeros_like(r_in)
    return GLETerms(eps, s, v_dot, e_hat, u_dot, u_prospective, GLEState(u, v, r, r_prime, e_bottom))


def gle_gradients(params, r_in, e_hat, u_dot, config):
    """∇W = −r_inᵀ ê / N, ∇b = −mean ê, ∇τ_m = mean(ê ⊙ u̇) (learn_tau only)."""
    n = tf.cast(tf.shape(r_in)[0], r_in.dtype)
    kernel = -tf.matmul(r_in, e_hat, transpose_a=True) / n
    bias = -tf.reduce_mean(e_hat, axis=0) if params.bias is not None else None
    tau_m = tf.reduce_mean(e_hat * u_dot, axis=0) if config.learn_tau else None
    return GLEGrads(kernel, bias, tau_m)


def gle_step(params, state, r_in, e_in, config, need_e_bottom=True):
    """One Euler step of neuron, error-neuron and plasticity dynamics: (new_state, grads)."""
    t = gle_terms(params, state, r_in, e_in, config, need_e_bottom=need_e_bottom)
    return t.state, gle_gradients(params, r_in, t.e_hat, t.u_dot, config)


def gle_forward_step(params, state, r_in, config):
    """The forward dynamics alone (no error neurons, ê = 0), as differentiable TF ops:
    u̇ = (s − u)/τ_m, u ← u + dt u̇, ŭ = u_old + τ_r u̇, r = φ(ŭ). v and e_bottom stay as they are."""
    s = tf.matmul(r_in, params.kernel)
    if params.bias is not None:
        s = s + params.bias
    u_dot = (s - state.u) / params.tau_m
    u = state.u + config.dt * u_dot
    r, r_prime = phi_and_derivative_fused(config.activation)(state.u + params.tau_r * u_dot)
    return GLEState(u, state.v, r, r_prime, state.e_bottom)


def adjust_batch(tensor, batch_size):
    """The seed's `adjust_batch_dimension`: tile the state along the batch, or keep its first rows."""
    n = tf.shape(tensor)[0]
    reps = (batch_size + n - 1) // n
    return tf.tile(tensor, tf.stack([reps, 1]))[:batch_size]


def time_constants(name, values, units, dt):
    """A per-unit float32 vector from a scalar or a list, each ≥ dt; a ValueError otherwise."""
    arr = np.asarray(values, dtype="float64")
    if arr.ndim == 0:
        arr = np.full((units,), float(arr))
    if arr.shape != (units,):
        raise ValueError(f"{name} must be a number or a list of {units} per-unit values; got {len(arr)} values.")
    if not np.all(np.isfinite(arr)) or np.any(arr < dt - 1e-9 * dt):
        bad = int(np.argmin(arr))
        raise ValueError(f"{name} must be ≥ dt = {dt} for every unit (explicit Euler); unit {bad} has {arr[bad]}.")
    return arr.astype("float32")


def _as_list(values):
    arr = np.asarray(values, dtype="float64")
    return float(arr) if arr.ndim == 0 else [float(x) for x in arr]


@keras.saving.register_keras_serializable(package="bpfree")
class MinValue(keras.constraints.Constraint):
    """Clamps a variable at a minimum (the learnable τ_m at ``tau_m_min``)."""

    def __init__(self, min_value):
        self.min_value = float(min_value)

    def __call__(self, w):
        return keras.ops.maximum(w, self.min_value)

    def get_config(self):
        return {"min_value": self.min_value}


@keras.saving.register_keras_serializable(package="bpfree")
class GLEDense(keras.layers.Layer):
    """A dense layer of GLE neurons; one `call` / `step` is one Euler step of size dt (module docstring).

    Args:
        units: output width.
        tau_m, tau_r: membrane and prospective time constants, a number or a per-unit list, ≥ dt.
            tau_r None means tau_r = tau_m. Mode "le" requires tau_r None (or equal to tau_m).
        dt: the Euler step.
        gamma: nudging strength of the errors into the membrane.
        activation: one of ACTIVATIONS.
        mode: "gle" (prospective errors), "le" (τ_r = τ_m, instantaneous errors) or "bp" /
            "instantaneous" (ê = v = ε with the given τ_r).
        use_bias: whether s has a bias.
        learn_tau: τ_m is trainable (∇τ_m = mean(ê ⊙ u̇)), clamped at ``tau_m_min`` (default dt).
        stateful: False asks the owning model to zero this layer's state before every batch.
        state_batch_size: the batch dimension of the state variables (see `reset_state`).
        kernel_initializer, bias_initializer: None gives PyTorch's `Linear` default,
            U(±1/√in), as in the seed.
        seed: seed of the default initializers.
    """

    def __init__(self, units, *, tau_m=1.0, tau_r=None, dt=0.1, gamma=0.0, activation="linear", mode="gle",
                 use_bias=True, learn_tau=False, tau_m_min=None, stateful=True, state_batch_size=1,
                 kernel_initializer=None, bias_initializer=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        checks.choice("GLE mode", mode, MODES)
        phi_and_derivative(activation)
        self.units = int(units)
        if self.units <= 0:
            raise checks.invalid("units", units, "must be positive")
        self.dt = float(dt)
        if not self.dt > 0:
            raise checks.invalid("dt", dt, "must be > 0")
        self.mode = "bp" if mode == "instantaneous" else mode
        if self.mode == "le" and tau_r is not None and not np.allclose(np.asarray(tau_r, "float64"),
                                                                        np.asarray(tau_m, "float64")):
            raise ValueError(f"Mode 'le' sets tau_r = tau_m; got tau_r={tau_r!r} (leave it None, or use mode 'gle').")
        self.tau_m_init = _as_list(tau_m)
        self.tau_r_init = None if tau_r is None else _as_list(tau_r)
        time_constants("tau_m", tau_m, self.units, self.dt)
        time_constants("tau_r", tau_m if tau_r is None else tau_r, self.units, self.dt)
        self.gamma = float(gamma)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.learn_tau = bool(learn_tau)
        self.tau_m_min = self.dt if tau_m_min is None else float(tau_m_min)
        if self.tau_m_min < self.dt - 1e-9 * self.dt:
            raise ValueError(f"tau_m_min {tau_m_min!r} must be ≥ dt = {self.dt}.")
        self.stateful = bool(stateful)
        self.state_batch_size = int(state_batch_size)
        if self.state_batch_size <= 0:
            raise checks.invalid("state_batch_size", state_batch_size, "must be positive")
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        self.bias_initializer = keras.initializers.get(bias_initializer) if bias_initializer else None
        self.seed = seed
        self.input_dim = None

    # ----------------------------------------------------------------------------------- weights
    @property
    def config(self):
        """The static `GLEConfig` of this layer's steps."""
        return GLEConfig(dt=self.dt, gamma=self.gamma, activation=self.activation,
                         prospective=self.mode == "gle", learn_tau=self.learn_tau)

    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else input_shape
        self.input_dim = int(shape[-1])
        bound = 1.0 / np.sqrt(self.input_dim)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.input_dim, self.units),
            initializer=self.kernel_initializer or keras.initializers.RandomUniform(-bound, bound, seed=self.seed))
        self.bias = self.add_weight(
            name="bias", shape=(self.units,),
            initializer=self.bias_initializer or keras.initializers.RandomUniform(
                -bound, bound, seed=seeds.gle_bias(self.seed))) if self.use_bias else None
        tau_m = time_constants("tau_m", self.tau_m_init, self.units, self.dt)
        tau_r = tau_m if self.tau_r_init is None else time_constants("tau_r", self.tau_r_init, self.units, self.dt)
        self.tau_m = self.add_weight(name="tau_m", shape=(self.units,), initializer=keras.initializers.Constant(0.0),
                                     trainable=self.learn_tau,
                                     constraint=MinValue(self.tau_m_min) if self.learn_tau else None)
        self.tau_r = self.add_weight(name="tau_r", shape=(self.units,), initializer=keras.initializers.Constant(0.0),
                                     trainable=False)
        self.tau_m.assign(tau_m)
        self.tau_r.assign(tau_r)
        self._make_state(self.state_batch_size)
        self.built = True

    def _make_state(self, batch_size):
        self.state_batch_size = int(batch_size)
        shapes = {"u": self.units, "v": self.units, "r": self.units, "r_prime": self.units,
                  "e_bottom": self.input_dim}
        self._state_vars = [self.add_weight(name=f"state_{k}", shape=(self.state_batch_size, d),
                                            initializer="zeros", trainable=False) for k, d in shapes.items()]

    def params(self):
        """`GLEParams` of the current weights (tensors usable inside a tape)."""
        return GLEParams(self.kernel, self.bias, self.tau_m, self.tau_r)

    @property
    def state_variables(self):
        return GLEState(*self._state_vars)

    def state(self, batch_size=None):
        """The stored state as a `GLEState` of tensors, tiled/narrowed to `batch_size` if given."""
        values = GLEState(*(v.value for v in self._state_vars))
        if batch_size is None:
            return values
        return GLEState(*(adjust_batch(t, batch_size) for t in values))

    def zero_state(self, batch_size):
        return zero_state(batch_size, self.input_dim, self.units, self.compute_dtype)

    def assign_state(self, state):
        """Commits `state`, tiled/narrowed to the state batch size."""
        for var, value in zip(self._state_vars, state):
            var.assign(adjust_batch(value, self.state_batch_size))

    def reset_state(self, batch_size=None):
        """Zeroes the state; with a new `batch_size`, re-creates the state variables at that size
        (eagerly, outside compiled functions: a model must re-trace, see `GLENetwork.reset_state`)."""
        if batch_size is not None and int(batch_size) != self.state_batch_size:
            for var in self._state_vars:
                self._untrack_variable(var)
            locked = self._tracker.locked
            self._tracker.unlock()
            self._make_state(batch_size)
            if locked:
                self._tracker.lock()
            return
        for var in self._state_vars:
            var.assign(keras.ops.zeros(var.shape, var.dtype))

    # ----------------------------------------------------------------------------------- steps
    def step(self, r_in, e_in, state=None, need_e_bottom=True):
        """One Euler step from `state` (default: the stored one, adjusted to the batch): (new_state, grads).
        Nothing is committed; see `assign_state`."""
        r_in = tf.convert_to_tensor(r_in, self.compute_dtype)
        state = self.state(tf.shape(r_in)[0]) if state is None else state
        return gle_step(self.params(), state, r_in, tf.convert_to_tensor(e_in, self.compute_dtype), self.config,
                        need_e_bottom=need_e_bottom)

    def forward_step(self, r_in, state=None):
        """The forward dynamics alone (ê = 0) from `state` (default: the stored one): the new state."""
        r_in = tf.convert_to_tensor(r_in, self.compute_dtype)
        state = self.state(tf.shape(r_in)[0]) if state is None else state
        return gle_forward_step(self.params(), state, r_in, self.config)

    def grads_and_vars(self, grads):
        """[(gradient, variable)] for `optimizer.apply` (kernel, bias, τ_m where they train)."""
        pairs = [(grads.kernel, self.kernel)]
        if self.use_bias:
            pairs.append((grads.bias, self.bias))
        if self.learn_tau:
            pairs.append((grads.tau_m, self.tau_m))
        return [(g, v) for g, v in pairs if v.trainable]

    def call(self, inputs):
        """r_in → forward-only step; [r_in, e_in] → full step. Commits the new state; returns the new r."""
        if isinstance(inputs, (list, tuple)):
            new_state, _ = self.step(inputs[0], inputs[1])
        else:
            new_state = self.forward_step(inputs)
        self.assign_state(new_state)
        return new_state.r

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else input_shape
        return tuple(shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units, "tau_m": self.tau_m_init, "tau_r": self.tau_r_init, "dt": self.dt,
            "gamma": self.gamma, "activation": self.activation, "mode": self.mode, "use_bias": self.use_bias,
            "learn_tau": self.learn_tau, "tau_m_min": self.tau_m_min, "stateful": self.stateful,
            "state_batch_size": self.state_batch_size,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer) if self.bias_initializer else None,
            "seed": self.seed,
        }
