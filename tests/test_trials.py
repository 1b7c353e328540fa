"""keras-tuner's contract (issue 22): one trial per tuner at a time, `run_trial` returning the trial's metrics.
A trial is a cohort of grid points of one structure (`bpfree.tuning.trials`), so a program's members come from
one trial: no tuner ids are invented to hold several trials (before: ``<tuner id>~k``)."""

import keras_tuner
import pytest

from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning.config import SearchConfig as Config
from bpfree.tuning.hypermodel import BpfreeHyperModel
from bpfree.tuning.oracle import GridOracle
from bpfree.tuning.options import points_per_trial, structure_key
from bpfree.tuning.space import trial_id
from bpfree.tuning.trials import COHORT, cohort_values, point_hyperparameters, points_of
from test_engine_search import assert_same_records, found

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 3e-3, 1e-2], "dropout": [0.0]}


def declared(space):
    hp = keras_tuner.HyperParameters()
    BpfreeHyperModel(space, Config(dataset="digits"), (64,), 10).declare_hyperparameters(hp)
    return hp


def trial_of(space, values):
    hp = declared(space).copy()
    hp.values = values
    return keras_tuner.engine.trial.Trial(hp, trial_id="0")


def test_a_cohort_is_one_trial_and_comes_back_whole_over_grpc():
    space = SearchSpace.create(SPACE)
    bp = [p for p in space.grid() if p["algorithm"] == "bp"]
    sent = trial_of(space, cohort_values(bp))
    received = keras_tuner.engine.trial.Trial.from_proto(sent.to_proto())  # what a worker gets
    assert points_of(sent) == points_of(received) == bp
    assert [p["lr"] for p in points_of(received)] == [1e-3, 3e-3, 1e-2]  # floats exact through JSON
    for point in bp:  # what each point's model is built from: the point's values, no cohort
        hp = point_hyperparameters(received, point)
        assert COHORT not in hp.values and {n: hp.values[n] for n in point} == point
    single = trial_of(space, cohort_values(bp[:1]))
    assert COHORT not in single.hyperparameters.values and points_of(single) == bp[:1]  # a plain keras-tuner trial


def test_the_oracle_hands_out_each_structure_in_cohorts_of_at_most_cohort_size(tmp_path):
    space = SearchSpace.create(SPACE)
    points = space.grid()
    oracle = GridOracle(points, str(tmp_path), "loss", cohort_size=2)
    cohorts = []
    while (response := oracle.populate_space("unused"))["status"] == "RUNNING":
        cohorts.append(points_of(trial_of(space, response["values"])))
    assert [len(c) for c in cohorts] == [2, 1, 2, 1]
    assert all(len({structure_key(p) for p in c}) == 1 for c in cohorts)
    assert sorted(trial_id(p) for c in cohorts for p in c) == sorted(map(trial_id, points))  # each point once


@pytest.mark.parametrize("fit, jit, executions, device, expected", [
    (True, True, 1, "cpu", 1), (False, False, 1, "cpu", 1), (False, True, 1, "cpu", 16), (False, True, 3, "cpu", 6),
    (False, True, 1, "gpu", 64)])
def test_a_trial_holds_enough_points_to_fill_a_program(fit, jit, executions, device, expected):
    assert points_per_trial(EngineOptions(fit=fit), jit, executions, device) == expected
    assert points_per_trial(EngineOptions(members=4), True, 2, device) == 2


def test_a_search_takes_one_trial_per_structure_under_its_own_tuner_id(tmp_path, monkeypatch):
    """XLA, programs of 3 members: the two rules' 3 points each are two trials, both asked for by the search's
    one tuner id, and the records are those of the points trained one trial per point (members=1 is a
    cohort of one; under XLA a member's numbers do not depend on its program's size)."""
    asked = []
    create = GridOracle.create_trial

    def recording(self, tuner_id):
        trial = create(self, tuner_id)
        asked.append((tuner_id, trial.status, len(points_of(trial)) if trial.status == "RUNNING" else 0))
        return trial

    monkeypatch.setattr(GridOracle, "create_trial", recording)
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1, use_xla=True)
    space = SearchSpace.create(SPACE)
    summary = run_search(str(tmp_path / "grouped"), config, space, log=lambda *a: None,
                         engine=EngineOptions(members=3))
    (tuner,) = {t for t, _, _ in asked}  # one tuner id, the search's
    assert [(status, size) for _, status, size in asked] == [("RUNNING", 3), ("RUNNING", 3), ("STOPPED", 0)]
    assert summary["ran"] == 6 and not summary["unfinished"]
    asked.clear()
    run_search(str(tmp_path / "alone"), config, space, log=lambda *a: None, engine=EngineOptions(members=1))
    assert [size for _, _, size in asked] == [1] * 6 + [0]
    assert_same_records(found(tmp_path / "grouped"), found(tmp_path / "alone"))


def test_an_accident_outside_the_executions_is_said_and_leaves_the_search_incomplete(tmp_path, monkeypatch):
    """keras-tuner's loop takes any exception of `run_trial` as an invalid trial and goes on without a word:
    the tuner says it in one line, and the trial's executions stay unfinished (the search exits 3; its re-run
    trains them)."""
    from bpfree.tuning import engine

    def broken(*args, **kwargs):
        raise RuntimeError("no memory for the program")

    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1, use_xla=True)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"]})
    lines = []
    with monkeypatch.context() as patch:
        patch.setattr(engine.MemberProgram, "__init__", broken)
        summary = run_search(str(tmp_path), config, space, log=lines.append, engine=EngineOptions(members=3))
    assert any("error; it runs again" in str(line) and "no memory for the program" in str(line) for line in lines)
    assert len(summary["unfinished"]) == 3 and len(summary["accidents"]) == 3
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None, engine=EngineOptions(members=3))
    assert not summary["unfinished"]
