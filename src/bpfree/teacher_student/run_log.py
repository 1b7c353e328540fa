"""`RunLog`: the execution record of one teacher–student run, one "epoch" per logged chunk.

One run (one model, one seed) is `<exp_dir>/records/<model>/execution_<seed>.json`
(`bpfree.records.ExecutionRecord`); its figures sit beside the records as `<exp_dir>/<name>.png`.
"""

import os
import time

from bpfree import records


class RunLog:
    """An execution record appended at every logging interval; the run's wall time is tracked."""

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
