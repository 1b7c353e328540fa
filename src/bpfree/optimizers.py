"""Optimizers the seed projects used that Keras does not have, and the name → optimizer lookup.

`TorchAdam` is Adam as `torch.optim.Adam` computes it (the GLE seed's optimiser): ε is added to the
bias-corrected √v̂,

    m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,   m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t),
    θ ← θ − η m̂ / (√v̂ + ε)                                  (ε = 1e-8 by default, as in PyTorch).

Keras's `Adam` adds ε before the correction, θ ← θ − η √(1 − β2^t)/(1 − β1^t) · m / (√v + ε), which is
θ − η m̂ / (√v̂ + ε̂) with ε̂ = ε / √(1 − β2^t): a larger ε early on (≈ 32 ε at t = 1 with β2 = 0.999),
ε itself once t ≫ 1/(1 − β2). The two differ where √v̂ is not ≫ ε̂, i.e. for tiny gradients (GLE's
errors scaled by β = 0.01 in LagLine). Keras's default ε is also 1e-7, PyTorch's 1e-8.

`UncorrectedAdam` is the GAIT-prop seed's "adaptive" update (run.py, always on): Adam *without* bias
correction, β1 = 0.9, β2 = 0.99, ε = 1e-8 added to √v,

    m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,   θ ← θ − η m / (√v + ε).

Keras's `Adam(beta_2=0.99, epsilon=1e-8)` is not the same: it divides m by (1 − β1^t) and v by
(1 − β2^t). Without that, the step of a steady gradient is η (1 − β1^t)/√(1 − β2^t) · sign(g): η at t = 1,
about 2.1 η around t = 10, η again after a few hundred steps. Written by hand because no Keras
optimizer has a switch for the correction.

`apply_after` is the one place every train step hands its gradients to the optimizer: the update
runs only once every gradient (and whatever else the step still reads) is computed.
"""

import keras
import tensorflow as tf

from bpfree import checks, choices

NAMES = choices.OPTIMIZERS
# Where each Adam adds its ε (`describe`).
PLACEMENTS = {"adam": "added before the bias correction (Keras)",
              "torch_adam": "added after the bias correction (PyTorch)",
              "uncorrected_adam": "added to √v, no bias correction"}


@keras.saving.register_keras_serializable(package="bpfree")
class UncorrectedAdam(keras.optimizers.Optimizer):
    """Adam without bias correction (the GAIT-prop seed's optimiser); see the module docstring."""

    def __init__(self, learning_rate=1e-4, beta_1=0.9, beta_2=0.99, epsilon=1e-8, name="uncorrected_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        ops = keras.ops
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr), ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="bpfree")
class TorchAdam(keras.optimizers.Adam):
    """Adam with ε added after the bias correction, θ ← θ − η m̂ / (√v̂ + ε), as `torch.optim.Adam`
    (``amsgrad``: v̂ from the running maximum of v, as there); see the module docstring. The other
    keyword arguments (weight_decay, clipnorm, ...) keep their Keras meaning."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, name="torch_adam",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        ops = keras.ops
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), t)
        correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), t)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
        if self.amsgrad:
            v_max = self._velocity_hats[self._get_variable_index(variable)]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction_2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, ops.divide(lr, correction_1)), denominator))


def get(name, learning_rate, **kwargs):
    """The optimizer called `name` (one of NAMES) at `learning_rate`, with the optimizer's other keyword
    arguments (e.g. ``epsilon``); ValueError naming the valid ones."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **kwargs)
    if name == "torch_adam":
        return TorchAdam(learning_rate, **kwargs)
    if name == "uncorrected_adam":
        return UncorrectedAdam(learning_rate, **kwargs)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, **kwargs)
    raise checks.unknown("optimizer", name, NAMES)


def describe(optimizer):
    """One line naming `optimizer` and, for an Adam, its ε and where it adds it (for logs and records)."""
    kind = {keras.optimizers.Adam: "adam", TorchAdam: "torch_adam", UncorrectedAdam: "uncorrected_adam"}.get(
        type(optimizer))
    if kind is None:
        momentum = getattr(optimizer, "momentum", None)
        return f"{type(optimizer).__name__}" + (f" (momentum {momentum:g}, no ε)" if momentum else "")
    return f"{kind} (ε = {optimizer.epsilon:g} {PLACEMENTS[kind]})"


def apply_after(optimizer, grads, variables, after=()):
    """`optimizer.apply(grads, variables)`, run only after every gradient and every tensor in `after`
    (a nest; the step's predictions, losses, new states) is computed: no read of a variable races with
    its update, and the update is the same in eager, graph and XLA modes.

    Why the explicit edges: in a `tf.function` without XLA, automatic control dependencies order each
    variable's reads before its update, but Grappler's dependency optimizer drops control edges out of
    ReadVariableOps (it counts reads as removable). A read whose value reaches the update only through
    *another* variable's gradient (W_l⁻¹ or W_l⁺ in the targets of layer l−1, W_lᵀ in bp_inv's error)
    then loses its only ordering and may see the optimizer's new W_l. Control edges from computed
    tensors are kept, and every read that matters feeds a gradient or a tensor in `after`. Eager runs
    in program order and XLA orders resource accesses itself; there the edges cost nothing.
    """
    if not optimizer.built:
        # Keras builds on the first apply; its variables must be created outside the control
        # dependencies, where tf.function can lift them out of the step (XLA refuses them otherwise).
        optimizer.build(variables)
    waits = [t for t in tf.nest.flatten([grads, after]) if tf.is_tensor(t)]
    with tf.control_dependencies(waits):
        optimizer.apply(grads, variables)
