"""Trained models out of a search: the best configurations' final models, kept by ``--save_models``.

    from bpfree import results
    (models,) = results.best_models("data/quickstart")          # the best configuration: a model per execution
    runner_up = results.best_models("data/quickstart", k=2)[1]  # the k best, best first
    model = bpfree.load_model("data/.../records/<trial>/execution_0.keras")

The configurations are ranked by `bpfree.results.best` (the same objective and score rules as every table);
each one's models are those of its completed executions, in execution order, each loaded with
`keras.models.load_model` after bpfree's classes are registered (`load_model`).
"""

import os

from bpfree import records
from bpfree.results.frame import load
from bpfree.results.scores import best

NO_MODELS = ("the search ran without --save_models; run it with --save_models (in a new EXPERIMENT_DIR, or with "
             "--reset_training: executions that finished are not trained again)")


def best_models(directory, k=1, objective=None, score=None, compile=True):
    """The models of the `k` best configurations of the records under `directory`, best first: a list of
    k lists, each the configuration's completed executions' final models in execution order (one per seed).

    `objective` and `score` as in `bpfree.results.best`. A ValueError when the records have no scored
    configuration or a chosen execution kept no model (its search ran without ``--save_models``)."""
    if int(k) < 1:
        raise ValueError(f"Invalid k {k!r}: an integer ≥ 1.")
    return [[load_model(path, compile=compile) for path in paths] for paths in best_model_paths(
        directory, k, objective, score)]


def best_model_paths(directory, k=1, objective=None, score=None):
    """The `.keras` files `best_models` loads: a list of k lists of paths (nothing is loaded)."""
    frame = load(directory)
    table = best(frame, objective, score=score) if len(frame) else frame
    if table.empty:
        raise ValueError(f"No configuration with a finite score in the records under {directory!r}.")
    out = []
    for row in table.head(int(k)).itertuples(index=False):
        mine = frame[(frame["project"] == row.project) & (frame["trial_id"] == row.trial_id)]
        executions = sorted(set(mine.loc[mine["status"] == "completed", "execution"]))
        project = os.path.join(directory, row.project)
        out.append([_model_path(records.execution_path(project, row.trial_id, e)) for e in executions])
    return out


def _model_path(record_path):
    """The absolute path of the model a record names, or a ValueError saying why there is none."""
    data = records.read(record_path)
    name = data.get("model_path")
    where = f"trial {data['trial_id']} execution {data['execution']} ({record_path})"
    if not name:
        raise ValueError(f"No saved model for {where}: {NO_MODELS}.")
    path = os.path.join(os.path.dirname(record_path), name)
    if not os.path.exists(path):
        raise ValueError(f"The saved model of {where} is missing: {path}.")
    return path


def load_model(path, **kwargs):
    """`keras.models.load_model(path, **kwargs)` with bpfree's classes registered first, in any process
    (`python -m bpfree.results` skips their registration on `import bpfree`; a process that never
    imported bpfree has Keras fail with "Could not locate class 'Network'")."""
    # Imported here, not at the top: the read side imports no TensorFlow until a model is asked for
    # (`python -m bpfree.results` and `import bpfree.results` stay light; tests/test_results.py).
    import keras

    import bpfree

    bpfree.register_classes()
    return keras.models.load_model(path, **kwargs)
