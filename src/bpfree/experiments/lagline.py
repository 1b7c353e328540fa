"""LagLine teacher–student (Fig. 5 of "Backpropagation through space, time and the brain"; seed
`experiments/mimic/lagline.py`): a student chain learns a teacher chain's weights and time constants.

    python -m bpfree.experiments.lagline --model gle|bp|bptt_tw4|bptt_tw2|bptt_tw1 \\
        [--t_train 4000] [--t_init 50] [--exp_dir data/lagline] [--seed 0] [--lr 1e-6] [--log_every 20] \\
        [--optimizer torch_adam|adam]

Network: two 1-unit `GLEDense` layers in a chain, softplus (φ' = sigmoid), no bias, τ_r = 0.1, dt = 0.01,
MSE output error β(y − r) with β = 0.01, γ = 1. Teacher: w = (1, 2), τ_m = (1, 2), no errors. Student:
w, τ_m ~ U(0, 1) (seeded), both learned with Adam, τ_m clamped at ≥ 10·dt. Input: a ±1 step function
of half-period 2, shifted per sample, Gaussian-smoothed with σ = 5 samples (`bpfree.datasets.signals.step_function`);
batch 100. First T_init = 50 time units without learning, then T_train = 4000 with learning.

Models:
- ``gle``: prospective errors (GLE), an Adam step at every dt (`bpfree.models.gle.GLENetwork`), lr = 1e-6/β;
- ``bp``: instantaneous errors ê = ε ("instantaneous BP" in the seed), same otherwise;
- ``bptt_tw{4,2,1}``: truncated BPTT through the forward dynamics, windows of 4/2/1 time units
  (K = 400/200/100 steps), one Adam step per window on the window's summed per-step MSE, lr = 1e-6/β·K
  (`bpfree.models.bptt.TruncatedBPTT`).

Adam: every model uses the seed's `torch.optim.Adam`, ε = 1e-8 added after the bias correction,
θ ← θ − η m̂/(√v̂ + ε) (`bpfree.optimizers.TorchAdam`, ``--optimizer torch_adam``, the default). The
β-scaled errors make the gradients small enough for ε's size (Keras's default is 1e-7) and, less so, its
place to shift the steps; ``--optimizer adam`` is Keras's Adam with the same ε added before the correction.

The student's output at step t is its old top rate r_L (before it consumes x_t), and its target at
step t is the teacher's old top rate at the same step, as in the seed, whose teacher returns its top
rate before committing the step's state, like its student. During T_init the GLE/BP students run their
full dynamics (error neurons included) with a zero learning rate, and get a fresh Adam at T_init; the
seed also swaps in the teacher's τ_m for the first half of T_init (for its plots), which we do not.

Records: `<exp_dir>/records/<model>/execution_<seed>.json` (`bpfree.results.load(exp_dir)`), with the
optimizer, its ε and where it adds it in the hparams, and one "epoch" per `log_every` time units: time,
learning (0/1), loss (mean per-step MSE over the interval), w_0, w_1, tau_m_0, tau_m_1, param_error (the
largest relative deviation from the teacher's four values). Figure: `<exp_dir>/lagline_<model>_seed<seed>.png`.
The first log line names the optimizer and where it adds ε.
"""

import dataclasses
import sys

import keras
import numpy as np

from bpfree import checks, optimizers
from bpfree.datasets import signals
from bpfree.experiments import entry
from bpfree.layers.gle import GLEDense
from bpfree.models.bptt import ForwardChain
from bpfree.teacher_student import BPTTStudent, GLEStudent, plot_run, run_recorded, whole_windows

MODELS = ("gle", "bp", "bptt_tw4", "bptt_tw2", "bptt_tw1")
ADAMS = ("torch_adam", "adam")  # ε after Adam's bias correction (the seed's torch.optim.Adam) | before it (Keras)
BPTT_WINDOWS = {"bptt_tw4": 4.0, "bptt_tw2": 2.0, "bptt_tw1": 1.0}  # time units


@dataclasses.dataclass(frozen=True)
class LagLineConfig:
    """The LagLine hyperparameters (defaults: the seed's). `lr` is before the 1/β (and ×K) rescaling."""

    model: str = entry.flag("gle", f"Student: {' | '.join(MODELS)}.")
    seed: int = entry.flag(0, "Seed of the student's initial parameters and the input shifts.")
    dt: float = 0.01
    tau_r: float = 0.1
    beta: float = 0.01
    lr: float = entry.flag(1e-6, "Learning rate before the 1/β (and ×window for BPTT) rescaling.")
    optimizer: str = entry.flag("torch_adam", "torch_adam: ε added after Adam's bias correction, as the seed's "
                                "torch.optim.Adam | adam: Keras's, ε before it.")
    epsilon: float = 1e-8  # the seed's (torch.optim.Adam's default)
    gamma: float = 1.0
    batch_size: int = entry.flag(100, "Batch size.")
    t_init: float = entry.flag(50.0, "Time without learning before training.")
    t_train: float = entry.flag(4000.0, "Training time (time units; dt = 0.01).")
    teacher_w: tuple = (1.0, 2.0)
    teacher_tau_m: tuple = (1.0, 2.0)
    tau_min_factor: float = 10.0
    width: float = 2.0
    smooth_sigma: float = 5.0
    log_every: float = entry.flag(20.0, "Record interval (time units).")
    plot_every: int = 50  # redraw the figure every this many logged intervals (and at the end)

    def __post_init__(self):
        checks.choice("--model", self.model, MODELS)
        checks.choice("--optimizer", self.optimizer, ADAMS)
        for name in ("dt", "tau_r", "beta", "lr", "t_train", "log_every", "width", "epsilon"):
            checks.number(name, getattr(self, name), lambda v: v > 0, "a number > 0")
        for name in ("t_init", "gamma", "smooth_sigma"):
            checks.number(name, getattr(self, name), lambda v: v >= 0, "a number ≥ 0")
        checks.whole("batch_size", self.batch_size, lambda v: v >= 1, "a positive integer")
        checks.number("tau_r", self.tau_r, lambda v: v >= self.dt, f"≥ dt {self.dt}")
        checks.number("tau_min_factor", self.tau_min_factor, lambda v: v * self.dt >= self.dt,
                      "≥ 1 (the τ_m clamp must be ≥ dt)")
        for name in ("teacher_w", "teacher_tau_m"):
            checks.choice(f"length of {name}", len(getattr(self, name)), (2,), label="Invalid")
        if self.is_bptt and self.window_steps > int(round(self.t_train / self.dt)):
            raise checks.invalid("t_train", self.t_train, f"shorter than the {self.model} window "
                                 f"{BPTT_WINDOWS[self.model]} time units")

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
        return whole_windows(max(1, int(round(self.log_every / self.dt))), self.window_steps)

    @property
    def train_steps(self):
        """Training steps (rounded up to whole windows for BPTT)."""
        return whole_windows(int(round(self.t_train / self.dt)), self.window_steps)

    def hparams(self):
        return {"model": self.model, "dt": self.dt, "tau_r": self.tau_r, "beta": self.beta, "lr": self.lr,
                "learning_rate": self.learning_rate, "optimizer": self.optimizer, "epsilon": self.epsilon,
                "epsilon_placement": optimizers.PLACEMENTS[self.optimizer], "gamma": self.gamma,
                "batch_size": self.batch_size,
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


def make_student(config, layers):
    """The student over `layers`: truncated BPTT for the bptt_tw* models, else a GLE/BP student; both learn
    with `config.optimizer` (ε = `config.epsilon`)."""

    def adam(learning_rate):
        return optimizers.get(config.optimizer, learning_rate, epsilon=config.epsilon)

    if config.is_bptt:
        return BPTTStudent(layers, adam(config.learning_rate), config.window_steps)
    return GLEStudent(layers, config.beta, adam, config.learning_rate)


def run(config, exp_dir, log=print):
    """Runs one LagLine student against its teacher; records as it goes. Returns the summary dict
    (final loss = mean per-step MSE of the last logged interval, the final parameters, param_error)."""
    keras.utils.set_random_seed(config.seed)
    w0, tau0 = student_init(config.seed)
    teacher = ForwardChain(build_chain(config, config.teacher_w, config.teacher_tau_m, mode="bp"))
    layers = build_chain(config, w0, tau0, mode="bp" if config.model == "bp" else "gle", learn=True)
    student = make_student(config, layers)
    total = config.init_steps + config.train_steps
    x = signals.step_function(config.dt, total * config.dt, config.batch_size, width=config.width,
                              smooth_sigma=config.smooth_sigma, seed=[int(config.seed), 2])[:, :total]
    return run_recorded(exp_dir, "lagline", config, teacher, student, x, params=lambda: student_params(layers),
                        param_error=lambda params: param_error(config, params),
                        plot=lambda history, path: plot(history, config, path), log=log)


def plot(history, config, path):
    """Loss and the student's w, τ_m against time, with the teacher's values dashed."""
    panels = [(label, [(f"{key}_{l}", teacher[l], f"{label} layer {l}") for l in range(2)])
              for key, teacher, label in (("w", config.teacher_w, "w"), ("tau_m", config.teacher_tau_m, "τ_m"))]
    plot_run(history, panels, t_learn=config.t_init, path=path,
             title=f"LagLine, {config.model}, seed {config.seed} (learning from t = {config.t_init:g})")


# ------------------------------------------------------------------------------------------- CLI
def main(argv=None):
    return entry.main(LagLineConfig, run, exp_dir="data/lagline", argv=argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
