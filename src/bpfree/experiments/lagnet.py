"""LagNet teacher–student (Fig. 6 of "Backpropagation through space, time and the brain"; seed
`experiments/mimic/lagnet.py`): only the first hidden layer learns, through a lagging network above it.

    python -m bpfree.experiments.lagnet [--model gle|bptt] [--t_total 1001] [--exp_dir data/lagnet] [--seed 5]

Network 1 → 2 → 2 → 1 of `GLEDense` layers, no bias, dt = 0.01, β = 1: hidden layers tanh, each with one
LE unit (τ_m = τ_r = 1) and one leaky-integrator-like unit (τ_m = 1, τ_r = 0.1); the output layer linear
with τ_m = τ_r = 1 and γ = 0; hidden γ = 1e-3. The teacher is the seed's "strong slow path" net with
a negative fast weight: hid_1 W = [[−0.5, 1]], hid_2 W = [[0.5, 0], [0, 1]], top W = [[0.5], [1]]. The
students share hid_2 and top with the teacher (frozen) and start hid_1 where the seed's do: the first
`torch.nn.Linear(1, 2)` built after `torch.manual_seed(seed)`, W ~ U(−1, 1) as torch's CPU generator draws
it (`bpfree.torch_random`). The seed's seed 5 ("# init negative weights", the default here) gives
W = [[0.6605, −0.7478]]: the fast (LE) weight positive where the teacher's is −0.5, the slow (LI) one
negative where the teacher's is +1. Input: x(t) = Σ_k sin(ω_k t), ω = (0.49, 1.07, 1.98) rad per time
unit (`bpfree.datasets.signals.sinusoids`; the seed's cosines go to an input channel it then drops), batch 1. Learning
starts at t = 80 (step 8000) and runs to T = 1001.

Models:
- ``gle``: GLE (prospective errors), SGD with momentum 0.9 at every dt, lr = 2e-2·dt/β = 2e-4
  (`bpfree.models.gle.GLENetwork`; the frozen layers still run their error neurons and pass errors down);
- ``bptt``: truncated BPTT through the forward dynamics, one SGD(momentum 0.9) step every 300 steps
  with lr 7e-2 on the window's ∫ ½(y − r)² dt (the seed's adjoint "BPTT" student, γ = 0).

Optimizer: both students use the seed's `torch.optim.SGD(momentum=0.9)`, which has no ε (so no question
of where Adam adds it). Keras's momentum form v ← μv − ηg, θ ← θ + v is torch's b ← μb + g, θ ← θ − ηb
(v = −ηb) at a constant learning rate, as here.

The student's output at step t is its old top rate (before it consumes x_t), and its target the
teacher's old top rate at the same step, as in the seed (whose teacher returns its top rate before
committing the step's state, like its students). Records: `<exp_dir>/records/<model>/execution_<seed>.json`
(the optimizer in the hparams), one epoch per `log_every` time units: time, learning, loss (mean per-step
MSE), w_0, w_1 (hid_1's kernel), param_error (largest relative deviation from the teacher's hid_1); figure
`<exp_dir>/lagnet_<model>_seed<seed>.png`. The first log line names the optimizer.
"""

import dataclasses
import math
import sys

import keras
import numpy as np

from bpfree import checks, torch_random
from bpfree.datasets import signals
from bpfree.experiments import entry
from bpfree.layers.gle import GLEDense
from bpfree.models.bptt import ForwardChain
from bpfree.teacher_student import BPTTStudent, GLEStudent, plot_run, run_recorded, whole_windows

MODELS = ("gle", "bptt")
TEACHER_HID_1 = (-0.5, 1.0)
HID_2 = ((0.5, 0.0), (0.0, 1.0))
TOP = ((0.5,), (1.0,))
OMEGAS = (0.49, 1.07, 1.98)  # rad per time unit: the seed's sine_freq = ω/(2π)


@dataclasses.dataclass(frozen=True)
class LagNetConfig:
    """The LagNet hyperparameters (defaults: the seed's)."""

    model: str = entry.flag("gle", f"Student: {' | '.join(MODELS)}.")
    dt: float = 0.01
    beta: float = 1.0
    seed: int = entry.flag(5, "torch.manual_seed of the student's initial hid_1 weights (the seed's 5).")
    gamma: float = 1e-3
    momentum: float = 0.9
    lr: float = entry.flag(2e-2, "GLE learning rate before the ·dt/β rescaling.")
    bptt_lr: float = entry.flag(7e-2, "BPTT learning rate.")
    bptt_window: int = 300  # steps
    t_start: float = entry.flag(80.0, "Time without learning before training (learning starts here).")
    t_total: float = entry.flag(1001.0, "Total simulated time (learning from --t_start on).")
    log_every: float = entry.flag(10.0, "Record interval (time units).")
    plot_every: int = 20

    def __post_init__(self):
        checks.choice("--model", self.model, MODELS)
        for name in ("dt", "beta", "lr", "bptt_lr", "t_total", "log_every"):
            checks.number(name, getattr(self, name), lambda v: v > 0, "a number > 0")
        for name in ("gamma", "momentum", "t_start"):
            checks.number(name, getattr(self, name), lambda v: v >= 0, "a number ≥ 0")
        checks.whole("bptt_window", self.bptt_window, lambda v: v >= 1, "a positive number of steps")
        checks.number("t_start", self.t_start, lambda v: v < self.t_total, f"before t_total {self.t_total}")
        if self.model == "bptt" and self.bptt_window > int(round(self.t_total / self.dt)) - self.init_steps:
            raise checks.invalid("t_total", self.t_total, f"training ({self.t_total - self.t_start:g} time units) "
                                 f"is shorter than one BPTT window ({self.bptt_window} steps)")

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
        """Training steps (rounded up to whole windows for BPTT)."""
        return whole_windows(int(round(self.t_total / self.dt)) - self.init_steps, self.window_steps)

    @property
    def chunk_steps(self):
        """Steps per logged interval (a whole number of windows for BPTT)."""
        return whole_windows(max(1, int(round(self.log_every / self.dt))), self.window_steps)

    def hparams(self):
        return {"model": self.model, "dt": self.dt, "beta": self.beta, "gamma": self.gamma, "lr": self.lr,
                "learning_rate": self.learning_rate, "optimizer": "sgd", "momentum": self.momentum,
                "truncation_steps": self.window_steps,
                "t_start": self.t_start, "t_total": self.t_total, "log_every": self.log_every,
                "teacher_w_0": TEACHER_HID_1[0], "teacher_w_1": TEACHER_HID_1[1]}


def student_init(seed):
    """hid_1's initial kernel (1, 2) as the seed's students get it: `torch.manual_seed(seed)`, then
    `nn.Linear(1, 2)` (U(−1, 1)), the first layer the seed builds."""
    return tuple(float(w) for w in torch_random.linear_kernel(seed, 1, 2)[0])


def build_net(config, hid_1, *, learn):
    """[hid_1, hid_2, top] `GLEDense` layers; only hid_1's kernel trainable when `learn` (the others keep
    a layer-level `trainable` so a GLE student still runs their error neurons, but their kernels are frozen)."""
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
    keras.utils.set_random_seed(config.seed)
    teacher = ForwardChain(build_net(config, TEACHER_HID_1, learn=False))
    layers = build_net(config, student_init(config.seed), learn=True)

    def sgd(lr):
        return keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum)

    if config.model == "bptt":
        student = BPTTStudent(layers, sgd(config.learning_rate), config.window_steps, loss="half_mse",
                              scale=config.dt)
    else:
        student = GLEStudent(layers, config.beta, sgd, config.learning_rate)
    total = config.init_steps + config.train_steps
    x = signals.sinusoids(config.dt, total * config.dt, 1, sine_freqs=[w / (2 * math.pi) for w in OMEGAS])[:, :total]
    return run_recorded(exp_dir, "lagnet", config, teacher, student, x, params=lambda: hid_1_params(layers),
                        param_error=param_error, plot=lambda history, path: plot(history, config, path), log=log)


def plot(history, config, path):
    """Loss and hid_1's weights against time, the teacher's weights dashed."""
    curves = [(f"w_{k}", TEACHER_HID_1[k], f"hid_1 w_{k} ({'LE' if k == 0 else 'LI'} unit)") for k in range(2)]
    plot_run(history, [("hid_1 weights", curves)], t_learn=config.t_start, path=path,
             title=f"LagNet, {config.model}, seed {config.seed} (learning from t = {config.t_start:g})")


# ------------------------------------------------------------------------------------------- CLI
def main(argv=None):
    return entry.main(LagNetConfig, run, exp_dir="data/lagnet", argv=argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
