"""Hyperband (`--search hyperband`): keras-tuner's brackets of successive halving over the grid's points, with
the grid's guarantees (every execution recorded, resumable after kill -9 with the same trials, reproducible
from the search seed, growth refused, the same results and report).

The schedule (`brackets`) is keras-tuner's `HyperbandOracle`'s (keras_tuner/src/tuners/hyperband.py: its
`_get_num_brackets`, `_get_size` and `_get_epochs`, private there, so their formulas are restated here, float
arithmetic included). With max_epochs the search's num_epochs and factor its hyperband_factor, the brackets
are s = s_max, …, 0 (s_max + 1: how many times max_epochs divides by factor staying ≥ 1), and bracket s has
rounds k = 0 … s of n(s, k) = ⌈⌈1 + log_factor(max_epochs)⌉ / (s + 1) · factor^(s−k)⌉ configurations
trained to r(s, k) = ⌈max_epochs / factor^(s−k)⌉ epochs: the last round of every bracket trains to num_epochs.
One iteration (keras-tuner's default hyperband_iterations = 1).

Where it departs from keras-tuner, for the grid's guarantees:

- Configurations are grid points drawn in `space.random_order(points, seed)`, none twice, at most
  `max_trials` of them. Where they run out, a bracket's first round is smaller (its later rounds no larger
  than the points scored before them) and the brackets after it are empty (keras-tuner stops altogether).
- A promoted point continues its own executions: one record each, its history growing round by round
  (`execution.Execution.open` extends a completed execution from its kept final state: bit for bit the
  training straight to the longer budget), where keras-tuner makes a new trial that loads the old model.
- Round k of a bracket is decided once every execution of round k − 1 has its result at that round's budget:
  the best n(s, k) points by their score there (each execution's objective over its first r(s, k − 1)
  epochs, by the search's score rule; a point's score is the mean of its executions' finite scores, as the
  tuner reports it; a point with none, diverged or failed, is never promoted); ties go to the earlier point
  of the round, as keras-tuner's stable sort does.
- The sequence is a function of the seed and the records alone: every start replays it from the records
  (`rebuild`, and again before each trial), nothing else is kept, so a killed search re-run trains the same
  trials to the same numbers. One trial at a time, in one process (workers refused), like bayesian.

Records: an execution's record says ``"hyperband": {"bracket": s, "budgets": [r(s, 0), r(s, 1), …]}``, the
budgets it was trained to (written by `Execution.open` before each round trains it), and, once the next
round of its bracket is decided without it, ``"stopped_by": "hyperband"`` (`STOPPED_BY`). The mark is
written into the record (atomically, when this oracle decides the round; again on the re-run where a kill
came in between) rather than left to be derived, because only this oracle can derive it: the read side
(`bpfree.results`: no TensorFlow, no grid, no seed) and people reading a record cannot replay the schedule.
The oracle itself never reads the mark (it replays); the read side leaves every execution its budget cut
short of its search's num_epochs out of the selection, marked or not yet decided (`bpfree.results.frame.partial`;
one that early stopping ended before its budget counts in full: trained straight it would have stopped there too).
"""

import math

import numpy as np

from bpfree import records, scoring
from bpfree.tuning.hyperband_schedule import brackets, most_rounds
from bpfree.tuning.oracle import RUNNING, STOPPED, GridOracle
from bpfree.tuning.space import random_order, trial_id
from bpfree.tuning.trials import BRACKET, EPOCHS, ROUND

STOPPED_BY = "hyperband"  # a record's "stopped_by" when a round's promotion left it out


def result_at(data, epochs, objective, score="final"):
    """(done, score) of one execution's record at a budget of `epochs`: done where it needs no more training
    for that budget (`records.done`) or a later round took it further (its first `epochs` epochs are final
    then); its score over those first epochs by the `score` rule, None where it failed or a loss there was
    not finite (diverged)."""
    history = data["history"]
    budgets = (data.get("hyperband") or {}).get("budgets") or []
    further = bool(budgets) and budgets[-1] > epochs and records.epochs_done(history) >= epochs
    if not (further or records.done(data, epochs)):
        return False, None
    if data["status"] == "failed":
        return True, None
    first = {name: values[:epochs] for name, values in history.items()}
    if any(v is None or not math.isfinite(v) for v in first.get("loss", [])):
        return True, None
    value, _ = scoring.execution_score(first, objective, score)
    return True, (value if math.isfinite(value) else None)


def successive_halving(schedule, order, result, left_out=None):
    """(steps, pending): the trials of `schedule` (`brackets`) over the configurations `order` (drawn in that
    order, none twice), decided so far: steps [(configuration, bracket, round, epochs)] in the order they run,
    and pending, those of the last decided round without their result. `result(configuration, epochs)` gives
    (done, score); a round is decided once the round before it is done: its best `n` by score (ties: the earlier
    in that round; None scores never kept). `left_out(configurations)` is called with those each decided round
    leaves out. keras-tuner's `HyperbandOracle.populate_space`, one trial at a time (see the module)."""
    steps, drawn = [], 0
    for bracket, rounds in schedule:
        current = list(order[drawn:drawn + rounds[0][0]])
        drawn += len(current)
        scores = []
        for k, (size, epochs) in enumerate(rounds):
            if k:
                ranked = sorted((s, i) for i, s in enumerate(scores) if s is not None)[:size]
                kept = {i for _, i in ranked}
                if left_out is not None:
                    left_out([c for i, c in enumerate(current) if i not in kept])
                current = [current[i] for _, i in ranked]
            if not current:
                break
            round_steps = [(c, bracket, k, epochs) for c in current]
            steps += round_steps
            results = [result(c, epochs) for c in current]
            pending = [step for step, (done, _) in zip(round_steps, results) if not done]
            if pending:
                return steps, pending
            scores = [s for _, s in results]
    return steps, []


class HyperbandOracle(GridOracle):
    """keras-tuner's Hyperband over the grid `points` (see the module), one trial at a time: a trial is one
    point at one round, its values the point's hparams and keras-tuner's "tuner/epochs", "tuner/bracket" and
    "tuner/round" (`trials.budget_of`). Its state is its schedule replayed from the records (`replay`):
    `steps`, [(point, bracket, round, epochs)] decided so far in order, and `pending`, those of the last
    decided round without their result yet. A cohort of one (`GridOracle`'s default `cohort_size`): each trial
    is one point, decided once the round before it has finished."""

    def __init__(self, points, directory, objective, executions_per_trial=1, num_epochs=None, *, seed, max_trials,
                 factor=3, score="final"):
        self.factor, self.score = factor, score
        self.order = random_order(points, seed)[:max_trials]  # the points it may draw, in the order it draws them
        self.schedule = brackets(num_epochs, factor)
        super().__init__(points, directory, objective, executions_per_trial, num_epochs)

    def rebuild(self):
        """Forgets what was handed out and replays the schedule from the records (writing nothing)."""
        self.handed_out = set()  # (trial id, epochs) handed out by this run
        self.asked, self.told_done = set(), set()
        self.all_told.clear()
        self.replay(mark=False)

    def replay(self, mark=True):
        """Replays the schedule from the records up to its first round not finished (`steps`, `pending`);
        with `mark`, writes ``"stopped_by": "hyperband"`` into the completed records of the points each decided
        round left out (once: a record marked already is left as it is), those cut short by their budget (one
        that early stopping ended before it stopped by itself)."""
        self.steps, self.pending = successive_halving(self.schedule, self.order, self.result,
                                                      self._mark_stopped if mark else None)
        pending = {trial_id(p) for p, *_ in self.pending}
        self.finished_ids = {trial_id(p) for p, *_ in self.steps} - pending

    def result(self, point, epochs):
        """(done, score) of `point` at a budget of `epochs`: whether each of its executions has its result there
        (`result_at`), and the mean of their finite scores (None where none is finite)."""
        scores = []
        for execution in range(self.executions_per_trial):
            data = records.read_or_none(records.execution_path(self.directory, trial_id(point), execution))
            if data is None:
                return False, None
            done, score = result_at(data, epochs, self.objective.name, self.score)
            if not done:
                return False, None
            if score is not None:
                scores.append(score)
        return True, (float(np.mean(scores)) if scores else None)

    def _mark_stopped(self, points):
        for point in points:
            for execution in range(self.executions_per_trial):
                path = records.execution_path(self.directory, trial_id(point), execution)
                data = records.read_or_none(path)
                if (data is not None and data["status"] == "completed" and data.get("stopped_by") != STOPPED_BY
                        and records.epochs_done(data["history"]) >= records.asked_epochs(data)):  # not early-stopped
                    record = records.ExecutionRecord.resume(path)
                    record.data["stopped_by"] = STOPPED_BY
                    record.save()

    def populate_space(self, trial_id_unused):
        self.replay()
        for point, bracket, k, epochs in self.pending:
            key = (trial_id(point), epochs)
            if key not in self.handed_out:
                self.handed_out.add(key)
                return {"status": RUNNING, "values": {**point, EPOCHS: epochs, BRACKET: bracket, ROUND: k}}
        # Done, or a trial handed out in this run did not finish (an accident): the run ends here, and
        # re-running the search retries it first, so the sequence stays the same.
        return {"status": STOPPED, "values": None}

    @property
    def remaining(self):
        """The known trials not handed out: the points of the current round without their result."""
        return [p for p, _, _, epochs in self.pending if (trial_id(p), epochs) not in self.handed_out]

    @property
    def trials_planned(self):
        """The trials of the schedule where every point has a score (fewer where some diverge or fail)."""
        return sum(n for _, rounds in most_rounds(len(self.order), self.schedule) for n, _ in rounds)

    def describe(self):
        done = len(self.steps) - len(self.pending)
        return (f"hyperband search: {len(self.schedule)} brackets to {self.num_epochs} epochs (factor {self.factor}), "
                f"{self.trials_planned} trials of at most {len(self.order)} of {len(self.points)} grid points, "
                f"{done} already finished, {self.trials_planned - done} to run")

    def unfinished_executions(self):
        """The executions of the current round without their result (read from disk now)."""
        self.replay(mark=False)
        out = []
        for point, _, _, epochs in self.pending:
            tid = trial_id(point)
            for execution in range(self.executions_per_trial):
                data = records.read_or_none(records.execution_path(self.directory, tid, execution))
                if data is None or not result_at(data, epochs, self.objective.name, self.score)[0]:
                    out.append((tid, execution, data["status"] if data else "missing", data and data.get("error")))
        return out
