"""Searches other than the whole grid, with the grid's guarantees: random and Bayesian (`--search`).

Both choose among the grid's points, so every grid guarantee (a record per execution, resume after kill -9,
the results and report) holds as it is; what they add is which points run, and in what order.

- random: the grid in a seeded order (`random_order`: points sorted by a hash of the search seed and their
  trial id), its first `max_trials` points. That is a grid over a subset, so the grid oracle runs it
  unchanged; a larger max_trials extends the same sequence (growth is defined).
- bayesian: keras-tuner's `BayesianOptimizationOracle` (its Gaussian process: Matern kernel, noise alpha,
  normalised scores; its acquisition: the upper confidence bound with its beta) proposes each trial from every finished
  trial before it, one trial at a time. Until `initial_points` trials have a score (keras-tuner's default:
  3 per searched hparam, at least 3) the trials are the random order's first points. For each later one a fresh keras-tuner
  oracle (seeded from the search seed and the trial number) fits its Gaussian process to the finished trials (keras-
  tuner's encoding of each hparam value; scores as their records give them; failed trials left out, as
  keras-tuner does), and the untried grid point of least acquisition is the next trial, ties (to 9 digits)
  to the first in the random order. Two departures from keras-tuner, both for reproducibility: the
  kernel's length scale stays at keras-tuner's initial value (fitted, it moved between processes given
  the same records), and the acquisition is minimised over the untried grid points, where keras-tuner
  runs L-BFGS from random starts over a continuous relaxation (on a few points that landscape is flat:
  float noise chose between equal values, and some proposals were points already tried). So the k-th trial
  is a function of the seed and the k − 1 before it alone, and a resumed search rebuilds its sequence from
  the records by replaying those proposals (no other state is kept).
"""

import hashlib
import math
import warnings

import keras_tuner
import numpy as np
import sklearn.base

from bpfree import records, scoring
from bpfree.hparam_names import HPARAMS
from bpfree.tuning.oracle import RUNNING, STOPPED, GridOracle
from bpfree.tuning.hyperband import HyperbandOracle
from bpfree.tuning.space import random_order, trial_id

COMPLETED, FAILED = keras_tuner.engine.trial.TrialStatus.COMPLETED, keras_tuner.engine.trial.TrialStatus.FAILED


def make_oracle(points, directory, config, cohort_size=1):
    """The oracle of `config.search` over the grid `points` (`GridOracle`, `RandomOracle`, `BayesianOracle`,
    `hyperband.HyperbandOracle`); `cohort_size`: the most grid points of one structure a trial holds (bayesian
    and hyperband: one, see theirs)."""
    common = dict(objective=config.objective, executions_per_trial=config.executions_per_trial,
                  num_epochs=config.num_epochs)
    if config.search == "random":
        return RandomOracle(points, directory, seed=config.seed, max_trials=config.max_trials,
                            cohort_size=cohort_size, **common)
    if config.search == "bayesian":
        return BayesianOracle(points, directory, seed=config.seed, max_trials=config.max_trials, score=config.score,
                              **common)
    if config.search == "hyperband":

        return HyperbandOracle(points, directory, seed=config.seed, max_trials=config.max_trials,
                               factor=config.hyperband_factor, score=config.score, **common)
    return GridOracle(points, directory, cohort_size=cohort_size, **common)


class RandomOracle(GridOracle):
    """The grid oracle over the first `max_trials` points of `random_order(points, seed)`, in that order."""

    def __init__(self, points, directory, objective, executions_per_trial=1, num_epochs=None, *, seed, max_trials,
                 cohort_size=1):
        self.grid_size = len(points)
        super().__init__(random_order(points, seed)[:max_trials], directory, objective, executions_per_trial,
                         num_epochs, cohort_size)

    def describe(self):
        return (f"random search: {len(self.points)} of {self.grid_size} grid points, {len(self.finished_ids)} "
                f"already finished, {len(self.remaining)} to run")


class BayesianOracle(GridOracle):
    """keras-tuner's Bayesian optimisation over the grid `points`, `max_trials` trials, one at a time: each
    trial is one grid point (a cohort of one), proposed once every trial before it has finished. Its state is
    the finished prefix of its sequence, replayed from the records (`rebuild`)."""

    def __init__(self, points, directory, objective, executions_per_trial=1, num_epochs=None, *, seed, max_trials,
                 score="final", initial_points=None):
        # `search_seed`: keras-tuner's Oracle keeps its own `seed` (a random one when given none or 0).
        self.search_seed, self.budget, self.score = seed, max_trials, score
        self.order = random_order(points, seed)
        self.hp, self.encode, self.searched = proposal_space(points)
        self.initial_points = initial_points or max(3 * len(self.searched), 3)  # keras-tuner's default
        super().__init__(points, directory, objective, executions_per_trial, num_epochs)

    @property
    def trials_planned(self):
        return min(self.budget, len(self.points))

    def rebuild(self):
        """Replays the sequence from the records: its finished prefix (`sequence`, [(point, score)]) and the
        trial after it (`next_point`, None when the budget or the grid is spent)."""
        self.handed_out = set()
        self.asked, self.told_done = set(), set()
        self.all_told.clear()
        self.sequence, self.next_point = [], None
        self._extend()

    def _extend(self):
        """Moves finished trials from `next_point` into `sequence`, proposing each next one."""
        while len(self.sequence) < self.budget:
            if self.next_point is None:
                self.next_point = self._propose()
                if self.next_point is None:  # the grid is spent
                    break
            done, score = self.trial_score(self.next_point)
            if not done:
                break
            self.sequence.append((self.next_point, score))
            self.next_point = None
        if len(self.sequence) >= self.budget:
            self.next_point = None
        self.finished_ids = {trial_id(p) for p, _ in self.sequence}

    def populate_space(self, trial_id_unused):
        self._extend()
        if self.next_point is None:
            return {"status": STOPPED, "values": None}
        tid = trial_id(self.next_point)
        if tid in self.handed_out:
            # Handed out in this run and not finished (an accident): the run ends here, and re-running the
            # search retries it first, so the sequence stays the same.
            return {"status": STOPPED, "values": None}
        self.handed_out.add(tid)
        return {"status": RUNNING, "values": dict(self.next_point)}

    @property
    def remaining(self):
        """The next trial, if it is known and not handed out (later ones are proposed as they come)."""
        return [] if self.next_point is None or trial_id(self.next_point) in self.handed_out else [self.next_point]

    def describe(self):
        return (f"bayesian search: {self.trials_planned} of {len(self.points)} grid points, one at a time "
                f"({self.initial_points} from the seeded random order first), {len(self.sequence)} already "
                f"finished, {self.trials_planned - len(self.sequence)} to run")

    def unfinished_executions(self):
        """The executions without a final record of the trials handed out and not finished."""
        out = []
        for tid in sorted(self.handed_out - self.finished_ids):
            for execution in range(self.executions_per_trial):
                path = records.execution_path(self.directory, tid, execution)
                data = records.read_or_none(path)
                if data is None or not records.done(data, self.num_epochs):
                    out.append((tid, execution, data["status"] if data else "missing", data and data.get("error")))
        return out

    # ------------------------------------------------------------------------------ the sequence
    def trial_score(self, point):
        """(done, score): whether every execution of `point` has a final record, and the trial's score then
        (the mean of its executions' finite scores, as the tuner reports it, diverged and failed executions
        having none; None where none is finite: a failed trial, left out of the Gaussian process)."""
        scores = []
        for execution in range(self.executions_per_trial):
            data = records.read_or_none(records.execution_path(self.directory, trial_id(point), execution))
            if data is None or not records.done(data, self.num_epochs):
                return False, None
            if data["status"] == "completed":
                value, _ = scoring.execution_score(data["history"], self.objective.name, self.score)
                if math.isfinite(value):
                    scores.append(value)
        return True, (float(np.mean(scores)) if scores else None)

    def _propose(self):
        """The trial after `sequence`: a function of the seed and the sequence alone (see the module)."""
        tried = {trial_id(p) for p, _ in self.sequence}
        untried = [p for p in self.order if trial_id(p) not in tried]  # in the random order: it breaks ties
        scored = [(p, s) for p, s in self.sequence if s is not None]  # keras-tuner leaves failed trials out
        if not untried or len(scored) < self.initial_points:  # keras-tuner: random until that many completed
            return untried[0] if untried else None
        proposer = keras_tuner.oracles.BayesianOptimizationOracle(
            objective=keras_tuner.Objective("score", direction="min"), max_trials=None,
            num_initial_points=self.initial_points, hyperparameters=self.hp.copy(),
            seed=step_seed(self.search_seed, len(self.sequence)))
        hps = {hp.name: hp for hp in proposer.hyperparameters.space if hp.name in self.searched}

        def vector(point):  # keras-tuner's encoding: each searched hparam's probability (inactive: its default)
            indices = self.encode(point)
            return [hp.value_to_prob(indices.get(name, hp.default)) for name, hp in hps.items()]

        x = np.array([vector(p) for p, _ in scored], dtype=float)
        y = np.nan_to_num(np.array([s for _, s in scored], dtype=float), posinf=0, neginf=0)
        with warnings.catch_warnings():  # scikit-learn's numerical notes on a few points: not the user's news
            warnings.simplefilter("ignore")
            # keras-tuner's Gaussian process with its kernel's hyperparameters kept at their initial values
            # (length scale 1 over the [0, 1] encoding) instead of fitted: the fit (L-BFGS, random restarts)
            # landed on different optima from the same records in different processes.
            gpr = sklearn.base.clone(proposer.gpr).set_params(optimizer=None)
            gpr.fit(x, y)
            mu, sigma = gpr.predict(np.array([vector(p) for p in untried], dtype=float), return_std=True)
        # keras-tuner's acquisition (its upper confidence bound, its beta), to 9 significant digits so that
        # float noise never decides between equal values: the first in the random order wins a tie.
        ucb = [float(f"{v:.9e}") for v in np.ravel(mu) - proposer.beta * np.ravel(sigma)]
        return untried[int(np.argmin(ucb))]


def step_seed(seed, k):
    """The seed of the k-th proposal's keras-tuner oracle (< 2**31: numpy's and scikit-learn's seeds)."""
    return int(hashlib.sha256(f"bayesian {seed} {k}".encode()).hexdigest(), 16) % 2**31


def proposal_space(points):
    """(hyperparameters, encode, searched): keras-tuner's space over the grid `points`, every hparam a Choice
    of the indices of its values (Fixed where it has one; numbers in increasing order, so the Gaussian
    process sees neighbours as neighbours; a rule's own hparam active under the algorithms that have it);
    `encode(point)` its values there; `searched`: the names of the Choices."""
    values, owners = {}, {}
    for point in points:
        for name, value in point.items():
            if value not in values.setdefault(name, []):
                values[name].append(value)
            owners.setdefault(name, [])
            if name not in HPARAMS and point["algorithm"] not in owners[name]:
                owners[name].append(point["algorithm"])
    for vals in values.values():
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            vals.sort()
    hp = keras_tuner.HyperParameters()

    def declare(name):
        n = len(values[name])
        return hp.Choice(name, list(range(n))) if n > 1 else hp.Fixed(name, 0)

    common = [n for n in HPARAMS if n in values]
    for name in common:
        declare(name)
    algorithms = values["algorithm"]
    for name in sorted(set(values) - set(common)):
        with hp.conditional_scope("algorithm", [algorithms.index(a) for a in owners[name]]):
            declare(name)

    def encode(point):
        return {name: values[name].index(value) for name, value in point.items()}

    return hp, encode, [name for name, vals in values.items() if len(vals) > 1]
