"""The grid oracle: hands out every grid point exactly once, resuming from the records on disk.

keras-tuner's GridSearch keeps its cursor in memory only (keras-tuner #1055, fix unreleased), so a
restarted search can skip or repeat points. Here the records are the state: a point whose executions
all finished (completed, failed or diverged) is never handed out again; an interrupted one is.
"""

import keras_tuner

from bpfree.tuning.space import trial_id


class GridOracle(keras_tuner.Oracle):
    def __init__(self, points, finished_ids, objective, **kwargs):
        super().__init__(
            objective=keras_tuner.Objective(objective, direction="min"),
            max_trials=None,
            max_consecutive_failed_trials=2**31,  # a failed point is recorded and the grid goes on
            **kwargs,
        )
        self.verbose = 0  # the tuner logs one line per execution instead of keras-tuner's tables
        self.points = list(points)
        self.finished_ids = set(finished_ids)
        self.handed_out = set()

    def populate_space(self, trial_id_unused):
        for point in self.points:
            pid = trial_id(point)
            if pid in self.finished_ids or pid in self.handed_out:
                continue
            self.handed_out.add(pid)
            return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": dict(point)}
        return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}

    @property
    def remaining(self):
        return [p for p in self.points if trial_id(p) not in self.finished_ids | self.handed_out]
