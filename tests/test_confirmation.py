"""Confirmation executions (`--confirm_seeds`, issue 24): after the grid, each rule's chosen configuration
re-run with fresh seeds, in the same resumable experiment, recorded apart and used by the report's tests."""

import os

from bpfree import records, results, seeds
from bpfree.tuning import SearchConfig, SearchSpace, run_search
from bpfree.tuning.confirmation import directory_of

SPACE = {"algorithm": ["bp", "fa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 3e-2], "dropout": [0.0]}
CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=2, seed=3)


def quiet(*args):
    pass


def read_all(directory):
    return {(d["trial_id"], d["execution"]): d for d in map(records.read, records.iter_record_paths(str(directory)))}


def test_confirmation_reruns_each_chosen_configuration_with_fresh_seeds(tmp_path):
    space, config = SearchSpace.create(SPACE), SearchConfig(**CONFIG)
    summary = run_search(str(tmp_path / "exp"), config, space, log=quiet, confirm_seeds=2)
    project = summary["project_dir"]
    grid, confirmed = read_all(os.path.join(project, records.RECORDS_DIRNAME)), read_all(directory_of(project))
    chosen = results.best(results.load(project), "val_error_rate", by="algorithm")
    assert sorted(confirmed) == sorted((t, k) for t in chosen["trial_id"] for k in (0, 1))
    assert all(r["confirmation"] is True and r["status"] == "completed" for r in confirmed.values())
    assert {r["seed"] for r in confirmed.values()} == {seeds.confirmation(3, k, 2) for k in (0, 1)}
    assert not {r["seed"] for r in confirmed.values()} & {r["seed"] for r in grid.values()}
    assert not any("confirmation" in r for r in grid.values())

    # The read side counts them to the search's project and leaves them out of the selection.
    frame = results.load(str(tmp_path / "exp"))
    assert set(frame["project"]) == {os.path.basename(project)}
    assert frame["confirmation"].sum() > 0
    assert list(results.best(frame, by="algorithm")["trial_id"]) == list(chosen["trial_id"])
    report = tmp_path / "report.md"
    results.report.write(frame, str(report))
    assert "confirmation executions" in report.read_text()

    # Run again: nothing trains; one seed more: only the new executions train, the others are unchanged.
    again = run_search(str(tmp_path / "exp"), config, space, log=quiet, confirm_seeds=2)
    assert again["ran"] == 0 and again["confirmation"]["ran"] == 0
    lines = []
    run_search(str(tmp_path / "exp"), config, space, log=lines.append, confirm_seeds=3)
    grown = read_all(directory_of(project))
    assert sorted(grown) == sorted((t, k) for t in chosen["trial_id"] for k in (0, 1, 2))
    for key, record in confirmed.items():
        assert grown[key]["history"] == record["history"]


def test_a_confirmation_execution_is_that_point_trained_with_its_seed(tmp_path):
    """Execution k of the confirmation equals the chosen point trained in a plain search whose execution k
    has the same seed: same data, same engine, only the seed differs from the grid's."""
    space, config = SearchSpace.create({**SPACE, "algorithm": ["fa"], "lr": [3e-2]}), SearchConfig(**CONFIG)
    summary = run_search(str(tmp_path / "exp"), config, space, log=quiet, confirm_seeds=1)
    (confirmed,) = read_all(directory_of(summary["project_dir"])).values()
    plain = SearchConfig(**{**CONFIG, "executions_per_trial": 1, "seed": seeds.confirmation(3, 0, 1)})
    summary = run_search(str(tmp_path / "plain"), plain, space, log=quiet)
    (alone,) = read_all(summary["project_dir"]).values()
    assert confirmed["seed"] == alone["seed"]
    assert confirmed["history"] == alone["history"]


def test_the_command_line_flag(tmp_path, cli_in_process):
    bad = cli_in_process(str(tmp_path / "exp"), "--dataset", "digits", "--confirm_seeds", "-1")
    assert bad.returncode == 2 and "--confirm_seeds" in bad.stderr
