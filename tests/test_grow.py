"""Experiments that grow in place (issue 15): more seeds, more epochs or more grid values on an existing
experiment run only what is new, and end with the records a search started that way would have made;
a change that would make old records incomparable is still refused, naming the setting."""

import pytest

from bpfree.tuning import SearchConfig, SearchSpace, run_search
from bpfree.tuning.search import ExperimentMismatch
from search_records import found

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-2], "dropout": [0.1]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=1, use_xla=False)


def search(directory, space=SPACE, **settings):
    lines = []
    run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(space), log=lines.append)
    return [line for line in lines if " execution " in line]


@pytest.mark.slow  # the fast tier: the refusals, an early-stopped execution, an extension without final state
def test_more_seeds_more_epochs_and_more_grid_values_run_only_what_is_new(tmp_path):
    grown, fresh = tmp_path / "grown", tmp_path / "fresh"
    assert len(search(grown)) == 2
    ran = search(grown, executions_per_trial=2)  # a second seed
    assert len(ran) == 4 and sum(line.endswith(tuple("0123456789")) for line in ran) == 4
    ran = search(grown, executions_per_trial=2, num_epochs=4)  # two more epochs for every execution
    assert sum("extending to 4 epochs at epoch 2" in line for line in ran) == 4
    ran = search(grown, space={**SPACE, "lr": [1e-2, 1e-3]}, executions_per_trial=2, num_epochs=4)  # a new lr
    assert sum("lr0.001" in line for line in ran) == 4 and not any("extending" in line for line in ran)

    search(fresh, space={**SPACE, "lr": [1e-2, 1e-3]}, executions_per_trial=2, num_epochs=4)
    after, reference = found(grown), found(fresh)
    assert after.keys() == reference.keys() and len(after) == 8
    for key, record in reference.items():
        assert after[key]["history"] == record["history"], key  # bit for bit, as if started that way
        assert after[key]["test"] == record["test"] and after[key]["search"] == record["search"], key
        assert after[key]["status"] == "completed"
    extended = [d for d in after.values() if d.get("extended_at_epochs")]
    assert len(extended) == 4 and all(d["extended_at_epochs"] == [2] for d in extended)
    assert not list(grown.rglob("*.ckpt.npz")) and len(list(grown.rglob("*.final.npz"))) == 8


def test_an_execution_without_its_final_state_runs_again_whole_when_extended(tmp_path):
    search(tmp_path / "old", num_epochs=2)
    for path in (tmp_path / "old").rglob("*.final.npz"):  # as records written before the final state was kept
        path.unlink()
    ran = search(tmp_path / "old", num_epochs=3)
    assert not any("extending" in line for line in ran)
    search(tmp_path / "fresh", num_epochs=3)
    old, fresh = found(tmp_path / "old"), found(tmp_path / "fresh")
    assert {k: v["history"] for k, v in old.items()} == {k: v["history"] for k, v in fresh.items()}
    assert len(list((tmp_path / "old").rglob("superseded_*execution_0.json"))) == 2  # the shorter records kept aside


@pytest.mark.slow
def test_an_early_stopped_execution_is_not_extended(tmp_path):
    settings = dict(num_epochs=6, use_early_stopping=True, early_stopping_patience=1)
    search(tmp_path, space={**SPACE, "lr": [0.3]}, **settings)
    before = found(tmp_path)
    stopped = [k for k, d in before.items() if len(d["history"]["loss"]) < 6]
    assert stopped, "no execution stopped early"
    ran = search(tmp_path, space={**SPACE, "lr": [0.3]}, **{**settings, "num_epochs": 8})
    for key in stopped:
        assert found(tmp_path)[key]["history"] == before[key]["history"]
        assert not any(key[0] in line and "extending" in line for line in ran)


@pytest.mark.parametrize("change,named", [
    ({"batch_size": 32}, "batch_size 64 → 32"),
    ({"num_epochs": 1}, "num_epochs 2 → 1"),
    ({"executions_per_trial": 0 + 1, "seed": 3}, "seed 0 → 3"),
    ({"space": {**SPACE, "lr": [1e-3]}}, "space.lr [0.01] → [0.001]"),
])
def test_a_change_that_makes_records_incomparable_is_refused_naming_it(tmp_path, change, named):
    search(tmp_path, num_epochs=2)
    before = found(tmp_path)
    space = change.pop("space", SPACE)
    with pytest.raises(ExperimentMismatch, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        search(tmp_path, space=space, **{"num_epochs": 2, **change})
    assert found(tmp_path) == before  # nothing ran, nothing changed
