"""Shared helpers of the teacher–student experiments: records, figures, CLI exit codes.

One run (one model, one seed) is one execution record, `<exp_dir>/records/<model>/execution_<seed>.json`
(`bpfree.records.ExecutionRecord`), so `bpfree.results.load(exp_dir)` reads every model's runs; each
"epoch" of the record is one logging interval of simulated time. A PNG per run sits next to the records.
"""

import math
import os
import sys
import time

from bpfree import io, records

EXIT_OK, EXIT_BAD_INPUT, EXIT_CRASH = 0, 2, 3


def check_choice(name, value, valid):
    """ValueError naming the bad value and the valid ones."""
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}.")
    return value


def check_positive(name, value, allow_zero=False):
    if not (value >= 0 if allow_zero else value > 0):
        raise ValueError(f"Invalid {name} {value}: must be {'≥' if allow_zero else '>'} 0.")
    return value


class RunLog:
    """An execution record appended to every logging interval; the run's wall time is tracked."""

    def __init__(self, exp_dir, model, seed, hparams):
        self.exp_dir = exp_dir
        self.record = records.ExecutionRecord(exp_dir, trial_id=model, execution=seed,
                                              hparams={"model": model, **hparams}, seed=seed)
        self.record.start(time.monotonic())

    @property
    def history(self):
        return self.record.data["history"]

    def append(self, logs):
        self.record.append_epoch(logs, wall_clock=time.monotonic())

    def finish(self, status="completed", error=None):
        self.record.finish(status, error=error, wall_clock=time.monotonic())

    def figure_path(self, name):
        return os.path.join(self.exp_dir, f"{name}.png")


def write_atomic(path, write, suffix):
    """Calls write(tmp) on a temporary name beside `path`, then renames it over `path` (`bpfree.io`)."""
    return io.write_atomic(path, write, suffix)


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG atomically."""
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), ".png")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on these machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def main(define_flags, make_config, run):
    """The absl entry point of an experiment module: `define_flags()` → FLAGS, then
    `run_cli(lambda: make_config(FLAGS), lambda config: run(config, FLAGS.exp_dir))`; stray
    positional arguments exit 2."""
    from absl import app

    FLAGS = define_flags()

    def entry(argv):
        if len(argv) > 1:
            print(f"error: unexpected arguments {' '.join(argv[1:])!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return run_cli(lambda: make_config(FLAGS), lambda config: run(config, FLAGS.exp_dir))

    app.run(lambda argv: sys.exit(entry(argv)))


def run_cli(resolve, run):
    """`run(resolve())`: a bad input (ValueError from `resolve`, before any training) exits 2 with one
    line on stderr; a crash during the run exits 3 with its traceback."""
    import traceback

    try:
        config = resolve()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        run(config)
    except Exception:  # noqa: BLE001 - a crash, not a user mistake
        traceback.print_exc()
        return EXIT_CRASH
    return EXIT_OK


# ------------------------------------------------------------------------------------------- students
class GLEStudent:
    """A GLE (or instantaneous-error) student: a `bpfree.models.gle.GLENetwork` over the given layers, one optimizer
    step at every dt inside its compiled time loop. Before `start_learning` it runs its full dynamics
    (error neurons included) with a zero learning rate; `start_learning` compiles a fresh optimizer."""

    def __init__(self, layers, beta, make_optimizer, learning_rate):
        from bpfree.models.gle import GLENetwork

        self.make_optimizer, self.learning_rate = make_optimizer, learning_rate
        self.net = GLENetwork(layers, layers[0].input_dim, loss="mse", beta=beta, input_mode="sequence")
        self._compile(0.0)

    def _compile(self, lr):
        self.net.compile(optimizer=self.make_optimizer(lr), jit_compile=False)

    def start_learning(self):
        self._compile(self.learning_rate)

    def run(self, x, y):
        """One chunk (x: (batch, steps, in), per-step targets y): the mean per-step MSE."""
        return float(self.net.train_on_batch(x, y, return_dict=True)["loss"])


class BPTTStudent:
    """A truncated-BPTT student (`bptt.TruncatedBPTT`); before `start_learning` it only runs forward."""

    def __init__(self, layers, optimizer, window, loss="mse", scale=1.0):
        from bpfree.experiments.bptt import TruncatedBPTT

        self.trainer = TruncatedBPTT(layers, optimizer, window, loss=loss, scale=scale)
        self.learning = False

    def start_learning(self):
        self.learning = True

    def run(self, x, y):
        return float((self.trainer.run if self.learning else self.trainer.forward)(x, y))


def chunks(start, stop, size):
    """[(a, b)] tiling [start, stop) in pieces of `size` (the last one shorter)."""
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def teacher_student_loop(teacher, student, x, *, init_steps, chunk_steps, dt, run_log, observe, log=print,
                         on_plot=None, plot_every=0):
    """Runs `student` against `teacher` (a `bptt.ForwardChain`) over the input x (batch, steps, in):
    chunks of `chunk_steps`, learning from `init_steps` on. After every chunk, one record epoch with
    time, learning, loss and `observe()` (a dict of the student's parameters and derived values).
    Stops with status "diverged" on a non-finite loss; "failed" (re-raised) on an exception."""
    total = x.shape[1]
    t0 = time.monotonic()
    bounds = chunks(0, init_steps, chunk_steps) + chunks(init_steps, total, chunk_steps)
    try:
        for k, (a, b) in enumerate(bounds):
            if a == init_steps:
                student.start_learning()
            xc = x[:, a:b]
            loss = student.run(xc, teacher.outputs(xc).numpy())
            logs = {"time": b * dt, "learning": float(a >= init_steps), "loss": loss, **observe()}
            run_log.append(logs)
            if not math.isfinite(loss):
                run_log.finish("diverged", error=f"loss {loss} at t = {b * dt:g}")
                log(f"diverged at t = {b * dt:g}")
                break
            if k % 10 == 0 or b == total:
                values = "  ".join(f"{key} {v:.4f}" for key, v in logs.items() if key not in ("time", "learning", "loss"))
                log(f"t {b * dt:8.1f}  loss {loss:.3e}  {values}  ({time.monotonic() - t0:.0f} s)")
            if on_plot and plot_every and k % plot_every == plot_every - 1:
                on_plot()
        else:
            run_log.finish("completed")
    except BaseException as e:
        run_log.finish("failed", error=f"{type(e).__name__}: {e}")
        raise
    if on_plot:
        on_plot()
    return {key: values[-1] for key, values in run_log.history.items()}
