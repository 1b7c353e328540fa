"""The grid oracle: hands out every grid point exactly once, its state rebuilt from the records on disk.

keras-tuner's GridSearch keeps its cursor in memory only (keras-tuner #1055, fix unreleased), so a
restarted search can skip or repeat points. Here the records are the state, and the oracle reads them
itself: a point whose executions all finished (completed, failed or diverged) is never handed out
again; an interrupted one (or one with a corrupt record) is. This module is the one place that reads
the records to decide what is finished.

Only keras-tuner's public API is used: `keras_tuner.Oracle` (`populate_space`, `create_trial` under
`keras_tuner.synchronized`, `set_state`) and `keras_tuner.engine.trial.TrialStatus`.
"""

import threading

import keras_tuner

from bpfree import checks, records
from bpfree.tuning.options import structure_key
from bpfree.tuning.space import trial_id
from bpfree.tuning.trials import cohort_values

RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED


def valid_records(directory):
    """(path, record) of every readable record under `directory`; a corrupt one is skipped (its execution
    runs again: the tuner moves it aside)."""
    for path in records.iter_record_paths(directory):
        try:
            yield path, records.read(path)
        except records.RecordError:
            continue


def finished_trials(directory, executions_per_trial, num_epochs=None):
    """Trial ids whose executions 0..k−1 all need no more training (`records.done`)."""
    status = {}
    for _, data in valid_records(directory):
        if records.done(data, num_epochs) and data["execution"] < executions_per_trial:
            status.setdefault(data["trial_id"], set()).add(data["execution"])
    return {t for t, done in status.items() if len(done) == executions_per_trial}


def unfinished_executions(directory, points, executions_per_trial, num_epochs=None):
    """[(trial id, execution, status or "missing", error)] of the grid's executions without a final record."""
    found = {(d["trial_id"], d["execution"]): d for _, d in valid_records(directory)}
    out = []
    for point in points:
        tid = trial_id(point)
        for execution in range(executions_per_trial):
            data = found.get((tid, execution))
            if data is None or not records.done(data, num_epochs):
                out.append((tid, execution, data["status"] if data else "missing", data and data.get("error")))
    return out


class GridOracle(keras_tuner.Oracle):
    """The grid `points` of the search whose records live under `directory` (its project directory).

    `finished_ids`: the grid's points whose `executions_per_trial` executions all have a final record,
    read from disk when the oracle is made and again whenever keras-tuner restores it (`set_state`, which
    `Oracle.reload` ends in): keras-tuner's own files never override the records. `handed_out`: the
    points given to a tuner since. `all_told` is set once every tuner that asked for a trial has been
    told the grid is done (the chief's end; see `bpfree.tuning.distributed.serve`).

    `cohort_size`: the most grid points one trial holds (`bpfree.tuning.trials`): the first point not
    handed out, with the next ones of its structure in grid order, so that one trial's executions fill a
    program (`bpfree.tuning.options.points_per_trial`).
    """

    def __init__(self, points, directory, objective, executions_per_trial=1, num_epochs=None, cohort_size=1,
                 **kwargs):
        checks.whole("executions_per_trial", executions_per_trial, lambda v: v >= 1, "an integer >= 1")
        checks.whole("cohort_size", cohort_size, lambda v: v >= 1, "an integer >= 1")
        self.cohort_size = cohort_size
        super().__init__(
            objective=keras_tuner.Objective(objective, direction="min"),
            max_trials=None,
            max_consecutive_failed_trials=2**31,  # a failed point is recorded and the grid goes on
            **kwargs,
        )
        self.verbose = 0  # the tuner logs one line per execution instead of keras-tuner's tables
        self.points = list(points)
        self.directory = directory
        self.executions_per_trial = executions_per_trial
        self.num_epochs = num_epochs
        self.all_told = threading.Event()
        self.rebuild()

    def rebuild(self):
        """Re-reads which grid points are finished from the records on disk; forgets what was handed out."""
        ids = {trial_id(p) for p in self.points}
        self.finished_ids = finished_trials(self.directory, self.executions_per_trial, self.num_epochs) & ids
        self.handed_out = set()
        self.asked, self.told_done = set(), set()
        self.all_told.clear()

    def set_state(self, state):
        super().set_state(state)
        self.rebuild()

    def populate_space(self, trial_id_unused):
        remaining = self.remaining
        if not remaining:
            return {"status": STOPPED, "values": None}
        structure = structure_key(remaining[0])
        cohort = [p for p in remaining if structure_key(p) == structure][:self.cohort_size]
        self.handed_out.update(trial_id(p) for p in cohort)
        return {"status": RUNNING, "values": cohort_values(cohort)}

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        self.asked.add(tuner_id)
        if trial.status == STOPPED:
            self.told_done.add(tuner_id)
            if self.told_done >= self.asked:
                self.all_told.set()
        return trial

    @property
    def trials_planned(self):
        """The trials the search runs in all, finished ones included."""
        return len(self.points)

    def describe(self):
        """The search's line at its start: its size, what is finished, what runs."""
        return f"{len(self.points)} grid points, {len(self.finished_ids)} already finished, {len(self.remaining)} to run"

    @property
    def remaining(self):
        """The points neither finished nor handed out, in grid order."""
        taken = self.finished_ids | self.handed_out  # once, not per point
        return [p for p in self.points if trial_id(p) not in taken]

    def unfinished_executions(self):
        """The grid's executions without a final record, read from disk now (see `unfinished_executions`)."""
        return unfinished_executions(self.directory, self.points, self.executions_per_trial, self.num_epochs)
