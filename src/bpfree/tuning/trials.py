"""keras-tuner trials as grid points: a trial stands for a *cohort*, one or more grid points of one structure.

keras-tuner's contract is one trial per tuner at a time, each run by `Tuner.run_trial`, which returns its
metrics. The engine trains every execution of a structure in the same kernels (`bpfree.tuning.engine`),
so a trial must be able to hold several grid points: the oracle (`bpfree.tuning.oracle.GridOracle`,
``cohort_size``) hands out the first point it has not handed out with up to ``cohort_size − 1`` more of the
same structure (`options.structure_key`: they differ only in the hparams a program reads per member), and
the trial says so in one value, `COHORT`: a JSON list of each point's per-member hparams (e.g.
``[{"lr": 0.001}, {"lr": 0.01}]``). The trial's other values are its first point's. A trial without it
(a cohort of one: `--engine fit`, bayesian search, programs of one member) is its point, as in plain
keras-tuner. Being a value of the trial, the cohort travels to a worker over keras-tuner's gRPC like any
hparam, so a worker trains exactly what the coordinator handed out.
"""

import json

from bpfree.tuning.options import VARIABLE_HPARAMS

COHORT = "cohort"

# keras-tuner's Hyperband trial values (its HyperbandOracle's names; undeclared, so never hparams of a point):
# the epochs a trial trains to, its bracket and its round (`bpfree.tuning.hyperband`).
EPOCHS, BRACKET, ROUND = "tuner/epochs", "tuner/bracket", "tuner/round"


def cohort_values(points):
    """The trial values of the cohort `points` (one structure, the first point first)."""
    values = dict(points[0])
    if len(points) > 1:
        values[COHORT] = json.dumps([{n: p[n] for n in VARIABLE_HPARAMS if n in p} for p in points])
    return values


def points_of(trial):
    """The grid points of a keras-tuner trial (its cohort, in the oracle's order). A trial that came over
    keras-tuner's gRPC (a worker's) carries every hparam of the space, those of other rules included
    (inactive, at their defaults): only the active ones make the point, else it would be another point,
    with another trial id."""
    hp = trial.hyperparameters
    point = {name: value for name, value in hp.values.items() if name != COHORT and hp.is_active(name)}
    cohort = hp.values.get(COHORT)
    if not cohort:
        return [point]
    return [{**point, **member} for member in json.loads(cohort)]


def budget_of(trial):
    """A Hyperband trial's budget, {"bracket": s, "epochs": r} (its "tuner/bracket" and "tuner/epochs"), or None:
    a trial of another search trains to the search's num_epochs."""
    values = trial.hyperparameters.values
    return {"bracket": int(values[BRACKET]), "epochs": int(values[EPOCHS])} if EPOCHS in values else None


def point_hyperparameters(trial, point):
    """The trial's keras-tuner `HyperParameters` with `point`'s values: what the hypermodel builds `point`
    from (every declared hparam, the cohort's value dropped)."""
    hp = trial.hyperparameters.copy()
    hp.values = {name: value for name, value in hp.values.items() if name != COHORT}
    hp.values.update(point)
    return hp
