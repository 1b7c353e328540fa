"""LagLine teacher–student (Fig. 5 of "Backpropagation through space, time and the brain"; seed
`experiments/mimic/lagline.py`): a student chain learns a teacher chain's weights and time constants.

    python -m bpfree.experiments.lagline --model gle|bp|bptt_tw4|bptt_tw2|bptt_tw1 \
        [--t_train 4000] [--t_init 50] [--exp_dir data/lagline] [--seed 0] [--lr 1e-6] [--log_every 20]

Network: two 1-unit `GLEDense` layers in a chain, softplus (φ' = sigmoid), no bias, τ_r = 0.1, dt = 0.01,
MSE output error β(y − r) with β = 0.01, γ = 1. Teacher: w = (1, 2), τ_m = (1, 2), no errors. Student:
w, τ_m ~ U(0, 1) (seeded), both learned with Adam, τ_m clamped at ≥ 10·dt. Input: a ±1 step function
of half-period 2, shifted per sample, Gaussian-smoothed with σ = 5 samples (`inputs.step_function`);
batch 100. First T_init = 50 time units without learning, then T_train = 4000 with learning.

Models:
- ``gle``: prospective errors (GLE), an Adam step at every dt (`bpfree.models.gle.GLENetwork`), lr = 1e-6/β;
- ``bp``: instantaneous errors ê = ε ("instantaneous BP" in the seed), same otherwise;
- ``bptt_tw{4,2,1}``: truncated BPTT through the forward dynamics, windows of 4/2/1 time units
  (K = 400/200/100 steps), one Adam step per window on the window's summed per-step MSE, lr = 1e-6/β·K
  (`bptt.TruncatedBPTT`).

The student's output at step t is compared with the teacher's output at the same step (both the old
rate r_L before consuming x_t); the seed compares the student's old rate with the teacher's new one,
a one-step offset that biases the fixed point by O(dt). During T_init the GLE/BP students run their
full dynamics (error neurons included) with a zero learning rate, and get a fresh Adam at T_init; the
seed also swaps in the teacher's τ_m for the first half of T_init (for its plots), which we do not.

Records: `<exp_dir>/records/<model>/execution_<seed>.json` (`bpfree.results.load(exp_dir)`), one
"epoch" per `log_every` time units: time, learning (0/1), loss (mean per-step MSE over the interval),
w_0, w_1, tau_m_0, tau_m_1, param_error (the largest relative deviation from the teacher's four
values). Figure: `<exp_dir>/lagline_<model>_seed<seed>.png`.
"""

import dataclasses
import math

import keras
import numpy as np

from bpfree.experiments import common, inputs

MODELS = ("gle", "bp", "bptt_tw4", "bptt_tw2", "bptt_tw1")
BPTT_WINDOWS = {"bptt_tw4": 4.0, "bptt_tw2": 2.0, "bptt_tw1": 1.0}  # time units


@dataclasses.dataclass(frozen=True)
class LagLineConfig:
    """The LagLine hyperparameters (defaults: the seed's). `lr` is before the 1/β (and ×K) rescaling."""

    model: str = "gle"
    seed: int = 0
    dt: float = 0.01
    tau_r: float = 0.1
    beta: float = 0.01
    lr: float = 1e-6
    gamma: float = 1.0
    batch_size: int = 100
    t_init: float = 50.0
    t_train: float = 4000.0
    teacher_w: tuple = (1.0, 2.0)
    teacher_tau_m: tuple = (1.0, 2.0)
    tau_min_factor: float = 10.0
    width: float = 2.0
    smooth_sigma: float = 5.0
    log_every: float = 20.0
    plot_every: int = 50  # redraw the figure every this many logged intervals (and at the end)

    def __post_init__(self):
        common.check_choice("--model", self.model, MODELS)
        for name in ("dt", "tau_r", "beta", "lr", "t_train", "log_every", "width"):
            common.check_positive(name, getattr(self, name))
        for name in ("t_init", "gamma", "smooth_sigma"):
            common.check_positive(name, getattr(self, name), allow_zero=True)
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"Invalid batch_size {self.batch_size}: must be a positive integer.")
        if self.tau_r < self.dt:
            raise ValueError(f"Invalid tau_r {self.tau_r}: must be ≥ dt {self.dt}.")
        if self.tau_min < self.dt:
            raise ValueError(f"Invalid tau_min_factor {self.tau_min_factor}: the τ_m clamp must be ≥ dt.")
        if len(self.teacher_w) != 2 or len(self.teacher_tau_m) != 2:
            raise ValueError("teacher_w and teacher_tau_m need two values (one per layer).")
        if self.is_bptt and self.window_steps > int(round(self.t_train / self.dt)):
            raise ValueError(f"t_train {self.t_train} is shorter than the {self.model} window "
                             f"{BPTT_WINDOWS[self.model]} time units.")

    @property
    def is_bptt(self):
        return self.model in BPTT_WINDOWS

    @property
    def tau_min(self):
        return self.tau_min_factor * self.dt

    @property
    def window_steps(self):
        """The truncation K in dt steps (1 for the GLE/BP students, which update every step)."""
        return int(round(BPTT_WINDOWS[self.model] / self.dt)) if self.is_bptt else 1

    @property
    def learning_rate(self):
        """The seed's rescaling: lr/β, times K for truncated BPTT."""
        return self.lr / self.beta * self.window_steps

    @property
    def init_steps(self):
        return int(round(self.t_init / self.dt))

    @property
    def chunk_steps(self):
        """Steps per logged interval (a whole number of windows for BPTT)."""
        steps = max(1, int(round(self.log_every / self.dt)))
        return int(math.ceil(steps / self.window_steps)) * self.window_steps

    @property
    def train_steps(self):
        """Training steps (rounded up to whole windows for BPTT)."""
        steps = int(round(self.t_train / self.dt))
        return int(math.ceil(steps / self.window_steps)) * self.window_steps

    def hparams(self):
        return {"model": self.model, "dt": self.dt, "tau_r": self.tau_r, "beta": self.beta, "lr": self.lr,
                "learning_rate": self.learning_rate, "gamma": self.gamma, "batch_size": self.batch_size,
                "t_init": self.t_init, "t_train": self.t_train, "truncation_steps": self.window_steps,
                "tau_min": self.tau_min, "teacher_w_0": self.teacher_w[0], "teacher_w_1": self.teacher_w[1],
                "teacher_tau_m_0": self.teacher_tau_m[0], "teacher_tau_m_1": self.teacher_tau_m[1],
                "log_every": self.log_every}


def student_init(seed):
    """The student's initial (w, τ_m), each ~ U(0, 1) per layer (before the τ_m clamp)."""
    rng = np.random.default_rng([int(seed), 1])
    return tuple(rng.uniform(0.0, 1.0, 2)), tuple(rng.uniform(0.0, 1.0, 2))


def build_chain(config, w, tau_m, *, mode="gle", learn=False):
    """Two 1-unit softplus `GLEDense` layers, no bias; τ_m learnable (clamped at 10·dt) when `learn`."""
    from bpfree.layers.gle import GLEDense

    layers = []
    for l in range(2):
        layer = GLEDense(1, tau_m=max(float(tau_m[l]), config.tau_min), tau_r=config.tau_r, dt=config.dt,
                         gamma=config.gamma, activation="softplus", mode=mode, use_bias=False, learn_tau=learn,
                         tau_m_min=config.tau_min if learn else None, state_batch_size=config.batch_size,
                         kernel_initializer=keras.initializers.Constant(float(w[l])), name=f"lagline_{l}")
        layer.build((config.batch_size, 1))
        layer.trainable = learn
        layers.append(layer)
    return layers


def student_params(layers):
    return {"w_0": float(layers[0].kernel.numpy()[0, 0]), "w_1": float(layers[1].kernel.numpy()[0, 0]),
            "tau_m_0": float(layers[0].tau_m.numpy()[0]), "tau_m_1": float(layers[1].tau_m.numpy()[0])}


def param_error(config, params):
    """max over the four parameters of |student − teacher| / teacher."""
    teacher = {"w_0": config.teacher_w[0], "w_1": config.teacher_w[1],
               "tau_m_0": config.teacher_tau_m[0], "tau_m_1": config.teacher_tau_m[1]}
    return max(abs(params[k] - v) / abs(v) for k, v in teacher.items())


def run(config, exp_dir, log=print):
    """Runs one LagLine student against its teacher; records as it goes. Returns the summary dict
    (final loss = mean per-step MSE of the last logged interval, the final parameters, param_error)."""
    from bpfree.experiments.bptt import ForwardChain

    keras.utils.set_random_seed(config.seed)
    w0, tau0 = student_init(config.seed)
    teacher = ForwardChain(build_chain(config, config.teacher_w, config.teacher_tau_m, mode="bp"))
    layers = build_chain(config, w0, tau0, mode="bp" if config.model == "bp" else "gle", learn=True)
    if config.is_bptt:
        student = common.BPTTStudent(layers, keras.optimizers.Adam(config.learning_rate), config.window_steps)
    else:
        student = common.GLEStudent(layers, config.beta, lambda lr: keras.optimizers.Adam(lr), config.learning_rate)
    total = config.init_steps + config.train_steps
    x = inputs.step_function(config.dt, total * config.dt, config.batch_size, width=config.width,
                             smooth_sigma=config.smooth_sigma, seed=[int(config.seed), 2])[:, :total]
    run_log = common.RunLog(exp_dir, config.model, config.seed, config.hparams())
    figure = run_log.figure_path(f"lagline_{config.model}_seed{config.seed}")
    log(f"lagline {config.model} seed {config.seed}: lr {config.learning_rate:g}, window {config.window_steps} "
        f"steps, {config.init_steps} init + {config.train_steps} training steps; student starts at "
        f"{_fmt(student_params(layers))}")

    def observe():
        params = student_params(layers)
        return {**params, "param_error": param_error(config, params)}

    final = common.teacher_student_loop(
        teacher, student, x, init_steps=config.init_steps, chunk_steps=config.chunk_steps, dt=config.dt,
        run_log=run_log, observe=observe, log=log, plot_every=config.plot_every,
        on_plot=lambda: plot(run_log.history, config, figure))
    log(f"final ({config.model}, T_train {config.t_train:g}): loss {final['loss']:.3e}, {_fmt(final)}, "
        f"param_error {final['param_error']:.2%}; records in {run_log.record.path}, figure {figure}")
    return {**final, "record": run_log.record.path, "figure": figure, "status": run_log.record.status}


def plot(history, config, path):
    """Loss and the student's w, τ_m against time, with the teacher's values dashed."""
    plt = common.pyplot()
    t = np.asarray(history["time"], dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    loss = np.asarray(history["loss"], dtype=float)
    axes[0].semilogy(t, np.where(loss > 0, loss, np.nan), color="k")
    axes[0].set_ylabel("MSE (mean per step over interval)")
    for ax, key, teacher, label in ((axes[1], "w", config.teacher_w, "w"),
                                    (axes[2], "tau_m", config.teacher_tau_m, "τ_m")):
        for l, color in ((0, "tab:blue"), (1, "tab:orange")):
            ax.plot(t, history[f"{key}_{l}"], color=color, label=f"{label} layer {l}")
            ax.axhline(teacher[l], color=color, ls="--", lw=1)
        ax.set_ylabel(f"{label} (teacher dashed)")
        ax.legend(fontsize=8)
    for ax in axes:
        ax.axvline(config.t_init, color="0.6", lw=0.8)
        ax.set_xlabel("time")
    fig.suptitle(f"LagLine, {config.model}, seed {config.seed} (learning from t = {config.t_init:g})")
    fig.tight_layout()
    common.save_figure(fig, path)
    plt.close(fig)


def _fmt(params):
    return ", ".join(f"{k} {params[k]:.4f}" for k in ("w_0", "w_1", "tau_m_0", "tau_m_1"))


# ------------------------------------------------------------------------------------------- CLI
def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", "gle", f"Student: {' | '.join(MODELS)}.")
    flags.DEFINE_float("t_train", 4000.0, "Training time (time units; dt = 0.01).")
    flags.DEFINE_float("t_init", 50.0, "Time without learning before training.")
    flags.DEFINE_string("exp_dir", "data/lagline", "Experiment directory (records and figures).")
    flags.DEFINE_integer("seed", 0, "Seed of the student's initial parameters and the input shifts.")
    flags.DEFINE_float("lr", 1e-6, "Learning rate before the 1/β (and ×window for BPTT) rescaling.")
    flags.DEFINE_float("log_every", 20.0, "Record interval (time units).")
    flags.DEFINE_integer("batch_size", 100, "Batch size.")
    return flags.FLAGS


def _config(FLAGS):
    return LagLineConfig(model=FLAGS.model, seed=FLAGS.seed, t_train=FLAGS.t_train, t_init=FLAGS.t_init,
                         lr=FLAGS.lr, log_every=FLAGS.log_every, batch_size=FLAGS.batch_size)


def main():
    common.main(_define_flags, _config, run)


if __name__ == "__main__":
    main()
