"""keras-tuner trials as grid points: the point a trial stands for, and trials grouped by structure."""

from bpfree.tuning.options import structure_key

# keras-tuner's Hyperband trial values (its HyperbandOracle's names; undeclared, so never hparams of a point):
# the epochs a trial trains to, its bracket and its round (`bpfree.tuning.hyperband`).
EPOCHS, BRACKET, ROUND = "tuner/epochs", "tuner/bracket", "tuner/round"


def point_of(trial):
    """The grid point of a keras-tuner trial: its active hparams. A trial that came over keras-tuner's gRPC
    (a worker's) carries every hparam of the space, those of other rules included (inactive, at their
    defaults): taken as they come they would make another point, with another trial id."""
    hp = trial.hyperparameters
    return {name: value for name, value in hp.values.items() if hp.is_active(name)}


def budget_of(trial):
    """A Hyperband trial's budget, {"bracket": s, "epochs": r} (its "tuner/bracket" and "tuner/epochs"), or None:
    a trial of another search trains to the search's num_epochs."""
    values = trial.hyperparameters.values
    return {"bracket": int(values[BRACKET]), "epochs": int(values[EPOCHS])} if EPOCHS in values else None


def by_structure(trials):
    """`trials` in groups of one structure (`options.structure_key`), in order of first appearance."""
    groups = {}
    for trial in trials:
        groups.setdefault(structure_key(point_of(trial)), []).append(trial)
    return list(groups.values())
