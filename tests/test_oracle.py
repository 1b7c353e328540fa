"""The grid oracle owns its state (rebuilt from the records on disk); bpfree uses keras-tuner's public API only."""

import ast
import pathlib

import keras_tuner
import pytest

from bpfree import io, records
from bpfree.tuning import GridOracle, SearchSpace, trial_id

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 1e-2], "dropout": [0.0]}
RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED
SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "bpfree"


def write_record(directory, point, execution, status):
    io.write_json(records.execution_path(directory, trial_id(point), execution),
                  {"trial_id": trial_id(point), "execution": execution, "hparams": dict(point), "status": status,
                   "history": {"loss": [0.5]}})


@pytest.fixture
def grid(tmp_path):
    """(directory, points): 4 points × 2 executions; only points[0] is finished on disk."""
    points = SearchSpace.create(SPACE).grid()
    assert len(points) == 4
    d = str(tmp_path / "project")
    write_record(d, points[0], 0, "completed")
    write_record(d, points[0], 1, "diverged")  # final: a property of the point
    write_record(d, points[1], 0, "completed")
    write_record(d, points[1], 1, "running")  # interrupted: runs again
    write_record(d, points[2], 0, "failed")
    path = records.execution_path(d, trial_id(points[2]), 1)
    write_record(d, points[2], 1, "completed")
    with open(path, "w") as f:  # truncated: its execution runs again
        f.write('{"trial_id": "x", "hist')
    write_record(d, points[3], 0, "error")  # an accident: runs again; execution 1 missing
    write_record(d, points[3], 2, "completed")  # beyond executions_per_trial: does not count
    other = {**points[0], "lr": 0.5}  # a finished point outside this grid
    write_record(d, other, 0, "completed")
    write_record(d, other, 1, "completed")
    return d, points


class _Tuner(keras_tuner.Tuner):
    def run_trial(self, trial, *args, **kwargs):
        return {"loss": 0.0}


def served(oracle, tmp_path):
    """The oracle as keras-tuner's public Tuner sets it up (project directory for its trial files)."""
    return _Tuner(oracle=oracle, directory=str(tmp_path / "kt"), project_name="chief", overwrite=True).oracle


def test_a_fresh_oracle_hands_out_exactly_the_unfinished_points_each_once(grid):
    directory, points = grid
    oracle = GridOracle(points, directory, "val_loss", executions_per_trial=2)
    assert oracle.finished_ids == {trial_id(points[0])}
    handed = []
    while (response := oracle.populate_space("unused"))["status"] == RUNNING:
        handed.append(response["values"])
    assert handed == points[1:]
    assert oracle.populate_space("unused")["status"] == STOPPED
    assert [(t, k) for t, k, _, _ in oracle.unfinished_executions()] == [
        (trial_id(points[1]), 1), (trial_id(points[2]), 1), (trial_id(points[3]), 0), (trial_id(points[3]), 1)]
    assert {s for _, _, s, _ in oracle.unfinished_executions()} == {"running", "missing", "error"}


def test_executions_per_trial_decides_what_is_finished(grid):
    directory, points = grid
    oracle = GridOracle(points, directory, "val_loss", executions_per_trial=1)
    assert oracle.finished_ids == {trial_id(p) for p in points[:3]}  # execution 0 final; 3's is an error
    assert oracle.remaining == points[3:]
    with pytest.raises(ValueError, match="Invalid executions_per_trial 0"):
        GridOracle(points, directory, "val_loss", executions_per_trial=0)


def test_restoring_the_oracle_rebuilds_its_state_from_the_records(grid):
    """keras-tuner's own state (set_state, where Oracle.reload ends) never overrides the records."""
    directory, points = grid
    oracle = GridOracle(points, directory, "val_loss", executions_per_trial=2)
    assert oracle.populate_space("unused")["values"] == points[1]
    write_record(directory, points[1], 1, "completed")  # another process finished points[1] and [3]
    write_record(directory, points[3], 0, "completed")
    write_record(directory, points[3], 1, "completed")
    oracle.set_state(oracle.get_state())
    assert oracle.finished_ids == {trial_id(p) for p in (points[0], points[1], points[3])}
    assert oracle.remaining == [points[2]]


def test_every_worker_is_told_the_grid_is_done_before_the_chief_ends(grid, tmp_path):
    directory, points = grid
    for point in points[1:3]:
        write_record(directory, point, 0, "completed")
        write_record(directory, point, 1, "completed")
    oracle = served(GridOracle(points, directory, "loss", executions_per_trial=2), tmp_path)
    a, b = oracle.create_trial("worker0"), oracle.create_trial("worker1")
    assert b.status == STOPPED and not oracle.all_told.is_set()  # worker0 still runs points[3]
    assert a.status == RUNNING and a.hyperparameters.values == points[3]
    assert oracle.create_trial("worker0") is a  # a restarted worker gets its trial back
    oracle.update_trial(a.trial_id, {"loss": 0.1})
    a.status = "COMPLETED"
    oracle.end_trial(a)
    assert oracle.create_trial("worker0").status == STOPPED
    assert oracle.all_told.is_set()


def _keras_tuner_references(tree):
    """(line, dotted name) of every keras_tuner import and attribute chain in a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "keras_tuner"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "keras_tuner":
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Attribute) and not isinstance(getattr(node, "parent", None), ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id == "keras_tuner":
                out.append((node.lineno, ".".join(["keras_tuner", *reversed(parts)])))
    return out


def test_bpfree_uses_only_keras_tuners_public_api():
    """No module under src/bpfree reaches keras_tuner.src (private; the wheel's layout differs from
    keras-tuner's source tree), and every keras_tuner name it uses resolves from the public package."""
    bad, checked = [], 0
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                child.parent = node
        for line, name in _keras_tuner_references(tree):
            checked += 1
            obj, parts = keras_tuner, name.split(".")[1:]
            if "src" in parts or any(p.startswith("_") for p in parts):
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {name} is private")
                continue
            for part in parts:
                obj = getattr(obj, part, None)
            if obj is None:
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {name} is not in keras-tuner "
                           f"{keras_tuner.__version__}'s public API")
    assert checked and not bad, "\n".join(bad)


def test_the_private_method_bpfree_overrides_still_exists():
    """GridTuner overrides keras-tuner's private `BaseTuner._activate_all_conditions` (to skip its
    exploratory model builds; the hypermodel declares every hparam itself). If an upgrade renames it,
    the override would silently stop working: fail loudly instead."""
    from bpfree.tuning import GridTuner

    for name in ("_activate_all_conditions",):
        assert name in vars(GridTuner) and callable(getattr(keras_tuner.Tuner, name, None)), (
            f"keras-tuner {keras_tuner.__version__} has no Tuner.{name}: GridTuner's override no longer applies")
