"""LagNet teacher–student (Fig. 6 of "Backpropagation through space, time and the brain"; seed
`experiments/mimic/lagnet.py`): only the first hidden layer learns, through a lagging network above it.

    python -m bpfree.experiments.lagnet [--model gle|bptt] [--t_total 1001] [--exp_dir data/lagnet] [--seed 0]

Network 1 → 2 → 2 → 1 of `GLEDense` layers, no bias, dt = 0.01, β = 1: hidden layers tanh, each with one
LE unit (τ_m = τ_r = 1) and one leaky-integrator-like unit (τ_m = 1, τ_r = 0.1); the output layer linear
with τ_m = τ_r = 1 and γ = 0; hidden γ = 1e-3. The teacher is the seed's "strong slow path" net with
a negative fast weight: hid_1 W = [[−0.5, 1]], hid_2 W = [[0.5, 0], [0, 1]], top W = [[0.5], [1]]. The
students share hid_2 and top with the teacher (frozen) and start hid_1 at W ~ U(−1, 1) (PyTorch's
`Linear` init for one input; seeded). Input: x(t) = Σ_k sin(ω_k t), ω = (0.49, 1.07, 1.98) rad per time
unit (`inputs.sinusoids`; the seed's cosines go to an input channel it then drops), batch 1. Learning
starts at t = 80 (step 8000) and runs to T = 1001.

Models:
- ``gle``: GLE (prospective errors), SGD with momentum 0.9 at every dt, lr = 2e-2·dt/β = 2e-4
  (`bpfree.models.gle.GLENetwork`; the frozen layers still run their error neurons and pass errors down);
- ``bptt``: truncated BPTT through the forward dynamics, one SGD(momentum 0.9) step every 300 steps
  with lr 7e-2 on the window's ∫ ½(y − r)² dt (the seed's adjoint "BPTT" student, γ = 0).

The student's output at a step is compared with the teacher's at the same step (`lagline` explains the
seed's one-step offset). Records: `<exp_dir>/records/<model>/execution_<seed>.json`, one epoch per
`log_every` time units: time, learning, loss (mean per-step MSE), w_0, w_1 (hid_1's kernel),
param_error (largest relative deviation from the teacher's hid_1); figure `<exp_dir>/lagnet_<model>_seed<seed>.png`.
"""

import dataclasses
import math

import keras
import numpy as np

from bpfree.experiments import common, inputs

MODELS = ("gle", "bptt")
TEACHER_HID_1 = (-0.5, 1.0)
HID_2 = ((0.5, 0.0), (0.0, 1.0))
TOP = ((0.5,), (1.0,))
OMEGAS = (0.49, 1.07, 1.98)  # rad per time unit: the seed's sine_freq = ω/(2π)


@dataclasses.dataclass(frozen=True)
class LagNetConfig:
    """The LagNet hyperparameters (defaults: the seed's)."""

    model: str = "gle"
    seed: int = 0
    dt: float = 0.01
    beta: float = 1.0
    gamma: float = 1e-3
    lr: float = 2e-2  # GLE, before the ·dt/β rescaling
    momentum: float = 0.9
    bptt_lr: float = 7e-2
    bptt_window: int = 300  # steps
    t_start: float = 80.0  # learning starts here
    t_total: float = 1001.0
    log_every: float = 10.0
    plot_every: int = 20

    def __post_init__(self):
        common.check_choice("--model", self.model, MODELS)
        for name in ("dt", "beta", "lr", "bptt_lr", "t_total", "log_every"):
            common.check_positive(name, getattr(self, name))
        for name in ("gamma", "momentum", "t_start"):
            common.check_positive(name, getattr(self, name), allow_zero=True)
        if int(self.bptt_window) != self.bptt_window or self.bptt_window < 1:
            raise ValueError(f"Invalid bptt_window {self.bptt_window}: must be a positive number of steps.")
        if self.t_start >= self.t_total:
            raise ValueError(f"t_start {self.t_start} must be before t_total {self.t_total}.")
        if self.model == "bptt" and self.bptt_window > int(round(self.t_total / self.dt)) - self.init_steps:
            raise ValueError(f"Training ({self.t_total - self.t_start:g} time units) is shorter than one "
                             f"BPTT window ({self.bptt_window} steps).")

    @property
    def window_steps(self):
        return self.bptt_window if self.model == "bptt" else 1

    @property
    def learning_rate(self):
        return self.bptt_lr if self.model == "bptt" else self.lr * self.dt / self.beta

    @property
    def init_steps(self):
        return int(round(self.t_start / self.dt))

    @property
    def train_steps(self):
        steps = int(round(self.t_total / self.dt)) - self.init_steps
        w = self.window_steps
        return int(math.ceil(steps / w)) * w

    @property
    def chunk_steps(self):
        w = self.window_steps
        return int(math.ceil(max(1, int(round(self.log_every / self.dt))) / w)) * w

    def hparams(self):
        return {"model": self.model, "dt": self.dt, "beta": self.beta, "gamma": self.gamma, "lr": self.lr,
                "learning_rate": self.learning_rate, "momentum": self.momentum, "truncation_steps": self.window_steps,
                "t_start": self.t_start, "t_total": self.t_total, "log_every": self.log_every,
                "teacher_w_0": TEACHER_HID_1[0], "teacher_w_1": TEACHER_HID_1[1]}


def student_init(seed):
    """hid_1's initial kernel (1, 2) ~ U(−1, 1)."""
    return tuple(np.random.default_rng([int(seed), 1]).uniform(-1.0, 1.0, 2))


def build_net(config, hid_1, *, learn):
    """[hid_1, hid_2, top] `GLEDense` layers; only hid_1's kernel trainable when `learn` (the others keep
    a layer-level `trainable` so a GLE student still runs their error neurons, but their kernels are frozen)."""
    from bpfree.layers.gle import GLEDense

    hidden = dict(tau_m=1.0, tau_r=[1.0, 0.1], dt=config.dt, gamma=config.gamma, activation="tanh", mode="gle",
                  use_bias=False, state_batch_size=1)
    specs = [("hid_1", 1, 2, [list(hid_1)], hidden), ("hid_2", 2, 2, HID_2, hidden),
             ("top", 2, 1, TOP, dict(tau_m=1.0, tau_r=1.0, dt=config.dt, gamma=0.0, activation="linear",
                                     mode="gle", use_bias=False, state_batch_size=1))]
    layers = []
    for name, n_in, units, kernel, kw in specs:
        layer = GLEDense(units, name=f"lagnet_{name}", **kw)
        layer.build((1, n_in))
        layer.kernel.assign(np.asarray(kernel, dtype="float32"))
        layer.kernel.trainable = learn and name == "hid_1"
        layer.trainable = learn
        layers.append(layer)
    return layers


def hid_1_params(layers):
    w = layers[0].kernel.numpy()[0]
    return {"w_0": float(w[0]), "w_1": float(w[1])}


def param_error(params):
    return max(abs(params[f"w_{k}"] - TEACHER_HID_1[k]) / abs(TEACHER_HID_1[k]) for k in range(2))


def run(config, exp_dir, log=print):
    """Runs one LagNet student against the teacher; records as it goes; returns the final values."""
    from bpfree.experiments.bptt import ForwardChain

    keras.utils.set_random_seed(config.seed)
    teacher = ForwardChain(build_net(config, TEACHER_HID_1, learn=False))
    layers = build_net(config, student_init(config.seed), learn=True)

    def sgd(lr):
        return keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum)

    if config.model == "bptt":
        student = common.BPTTStudent(layers, sgd(config.learning_rate), config.window_steps, loss="half_mse",
                                     scale=config.dt)
    else:
        student = common.GLEStudent(layers, config.beta, sgd, config.learning_rate)
    total = config.init_steps + config.train_steps
    x = inputs.sinusoids(config.dt, total * config.dt, 1, sine_freqs=[w / (2 * math.pi) for w in OMEGAS])[:, :total]
    run_log = common.RunLog(exp_dir, config.model, config.seed, config.hparams())
    figure = run_log.figure_path(f"lagnet_{config.model}_seed{config.seed}")
    log(f"lagnet {config.model} seed {config.seed}: lr {config.learning_rate:g}, window {config.window_steps} steps, "
        f"{config.init_steps} init + {config.train_steps} training steps; hid_1 starts at {hid_1_params(layers)}")

    def observe():
        params = hid_1_params(layers)
        return {**params, "param_error": param_error(params)}

    final = common.teacher_student_loop(
        teacher, student, x, init_steps=config.init_steps, chunk_steps=config.chunk_steps, dt=config.dt,
        run_log=run_log, observe=observe, log=log, plot_every=config.plot_every,
        on_plot=lambda: plot(run_log.history, config, figure))
    log(f"final ({config.model}, T {config.t_total:g}): loss {final['loss']:.3e}, hid_1 w ({final['w_0']:.4f}, "
        f"{final['w_1']:.4f}) vs teacher {TEACHER_HID_1}, param_error {final['param_error']:.2%}; "
        f"records in {run_log.record.path}, figure {figure}")
    return {**final, "record": run_log.record.path, "figure": figure, "status": run_log.record.status}


def plot(history, config, path):
    """Loss and hid_1's weights against time, the teacher's weights dashed."""
    plt = common.pyplot()
    t = np.asarray(history["time"], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    loss = np.asarray(history["loss"], dtype=float)
    axes[0].semilogy(t, np.where(loss > 0, loss, np.nan), color="k")
    axes[0].set_ylabel("MSE (mean per step over interval)")
    for k, color in ((0, "tab:blue"), (1, "tab:orange")):
        axes[1].plot(t, history[f"w_{k}"], color=color, label=f"hid_1 w_{k} ({'LE' if k == 0 else 'LI'} unit)")
        axes[1].axhline(TEACHER_HID_1[k], color=color, ls="--", lw=1)
    axes[1].set_ylabel("hid_1 weights (teacher dashed)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.axvline(config.t_start, color="0.6", lw=0.8)
        ax.set_xlabel("time")
    fig.suptitle(f"LagNet, {config.model}, seed {config.seed} (learning from t = {config.t_start:g})")
    fig.tight_layout()
    common.save_figure(fig, path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- CLI
def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", "gle", f"Student: {' | '.join(MODELS)}.")
    flags.DEFINE_float("t_total", 1001.0, "Total simulated time (learning from --t_start on).")
    flags.DEFINE_float("t_start", 80.0, "Time without learning before training.")
    flags.DEFINE_string("exp_dir", "data/lagnet", "Experiment directory (records and figures).")
    flags.DEFINE_integer("seed", 0, "Seed of the student's initial hid_1 weights.")
    flags.DEFINE_float("lr", 2e-2, "GLE learning rate before the ·dt/β rescaling.")
    flags.DEFINE_float("bptt_lr", 7e-2, "BPTT learning rate.")
    flags.DEFINE_float("log_every", 10.0, "Record interval (time units).")
    return flags.FLAGS


def _config(FLAGS):
    return LagNetConfig(model=FLAGS.model, seed=FLAGS.seed, t_total=FLAGS.t_total, t_start=FLAGS.t_start,
                        lr=FLAGS.lr, bptt_lr=FLAGS.bptt_lr, log_every=FLAGS.log_every)


def main():
    common.main(_define_flags, _config, run)


if __name__ == "__main__":
    main()
