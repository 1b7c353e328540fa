"""Shared helpers of the teacher–student experiments: records, figures, CLI exit codes.

One run (one model, one seed) is one execution record, `<exp_dir>/records/<model>/execution_<seed>.json`
(`bpfree.records.ExecutionRecord`), so `bpfree.results.load(exp_dir)` reads every model's runs; each
"epoch" of the record is one logging interval of simulated time. A PNG per run sits next to the records.
"""

import os
import sys
import tempfile
import time

from bpfree import records

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


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG atomically (temporary name in the same folder, then replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on these machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
