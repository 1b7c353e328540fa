"""Hyperband (`--search hyperband`, `--hyperband_factor`; issue 24) with the grid's guarantees: keras-tuner's
brackets and promotions, every execution recorded (one record per execution, its budgets growing round by
round, stopped ones marked), the same sequence and records from the same seed, after an interruption too,
a promoted execution's record the one trained straight to its budget, the selection among full-budget
executions only, growth and workers refused in one line."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from bpfree import io, records, results
from bpfree.results.frame import partial
from bpfree.tuning import SearchConfig, SearchSpace, run_search, trial_id
from bpfree.tuning import execution as execution_module
from bpfree.tuning.execution import hyperband_mark
from bpfree.tuning.hyperband import STOPPED_BY, HyperbandOracle, brackets, result_at, successive_halving
from bpfree.tuning.search import ExperimentMismatch
from bpfree.tuning.searches import make_oracle, random_order
from bpfree.tuning.trials import BRACKET, EPOCHS
from fresh_process import fresh_env, kill_9_when

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------- keras-tuner's schedule
def made_up(x, epochs):
    """A made-up score of configuration `x` at a budget: distinct values, ranks that change with the budget."""
    return int(hashlib.sha256(f"{x} {epochs}".encode()).hexdigest()[:8], 16) / 2**32


@pytest.mark.parametrize("max_epochs, factor, iterations", [(9, 3, 1), (27, 3, 1), (10, 2, 2), (5, 4, 1), (2, 3, 1)])
def test_the_schedule_and_promotions_are_keras_tuners(tmp_path, max_epochs, factor, iterations):
    """keras-tuner's own Hyperband (public API, its run_trial replaced by a made-up score) runs a sequence of
    (configuration, bracket, round, epochs) trials; `successive_halving` over `brackets` gives the same
    sequence from the same first-round draws and scores: the same brackets, round sizes, budgets and promotions."""
    import keras_tuner

    class Recorder(keras_tuner.Hyperband):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            self.seen.append((hp["x"], hp["tuner/bracket"], hp["tuner/round"], hp["tuner/epochs"]))
            return made_up(hp["x"], hp["tuner/epochs"])

    hp = keras_tuner.HyperParameters()
    hp.Int("x", 0, 10**9)
    tuner = Recorder(objective=keras_tuner.Objective("score", "min"), max_epochs=max_epochs, factor=factor,
                     hyperband_iterations=iterations, hyperparameters=hp, seed=1, directory=str(tmp_path),
                     project_name="kt", overwrite=True)
    tuner.seen = []
    tuner.search(verbose=0)
    drawn = [x for x, _, k, _ in tuner.seen if k == 0]
    schedule = brackets(max_epochs, factor, iterations)
    steps, pending = successive_halving(schedule, drawn, lambda x, epochs: (True, made_up(x, epochs)))
    assert steps == tuner.seen and not pending
    assert all(rounds[-1][1] == max_epochs for _, rounds in schedule)  # every bracket ends at max_epochs
    assert len(drawn) == sum(rounds[0][0] for _, rounds in schedule) == len(set(drawn))


def test_brackets_of_keras_tuners_example():
    assert brackets(9, 3) == [(2, [(9, 1), (3, 3), (1, 9)]), (1, [(5, 3), (2, 9)]), (0, [(3, 9)])]
    assert brackets(4, 2) == [(2, [(4, 1), (2, 2), (1, 4)]), (1, [(3, 2), (2, 4)]), (0, [(3, 4)])]


# ------------------------------------------------------------------------------------- the oracle, on written records
GRID = {"algorithm": ["bp", "dfa"], "arch": ["16", "32"], "activation": ["tanh"], "batchnorm": [False],
        "bw_init": ["ortho"], "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], "dropout": [0.0]}


def loss(point, epoch):
    """A made-up loss per epoch, falling at a rate of its point's own: ranks change with the budget."""
    return made_up(trial_id(point), 0) + made_up(trial_id(point), 1) / (1 + epoch)


def train(directory, values, status="completed", upto=None):
    """Writes what the tuner would for a handed-out trial (`values`): its record opened at its budget
    (`hyperband_mark`) and its history extended to the budget (to `upto` epochs with status running: a kill)."""
    point = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    path = records.execution_path(directory, trial_id(point), 0)
    previous = records.read(path) if os.path.exists(path) else None
    epochs = values[EPOCHS] if upto is None else upto
    data = {"trial_id": trial_id(point), "execution": 0, "hparams": point, "status": status,
            "search": {"num_epochs": 9},
            "history": {"loss": [loss(point, e) for e in range(epochs)]},
            "hyperband": hyperband_mark(previous, {"bracket": values[BRACKET], "epochs": values[EPOCHS]})}
    io.write_json(path, data)


def drive(oracle, directory, stop_after=None):
    """Hands out trials and records them until the oracle stops, or leaves the `stop_after`-th one part-trained."""
    handed = []
    while (response := oracle.populate_space("unused"))["status"] == "RUNNING":
        values = response["values"]
        handed.append((trial_id({k: v for k, v in values.items() if not k.startswith("tuner/")}), values[EPOCHS]))
        if stop_after is not None and len(handed) == stop_after:
            previous = records.execution_path(directory, handed[-1][0], 0)
            ran = records.epochs_done(records.read(previous)["history"]) if os.path.exists(previous) else 0
            train(directory, values, status="running", upto=ran + (values[EPOCHS] - ran) // 2)
            break
        train(directory, values)
    return handed


def oracle(directory, max_trials=20):
    return HyperbandOracle(SearchSpace.create(GRID).grid(), directory, "loss", num_epochs=9, seed=0,
                           max_trials=max_trials, factor=3)


def on_disk(directory):
    return {d["trial_id"]: {k: d.get(k) for k in ("status", "history", "hyperband", "stopped_by")}
            for d in map(records.read, records.iter_record_paths(directory))}


def test_the_sequence_follows_the_seed_draws_without_repeats_and_marks_the_stopped(tmp_path):
    whole = drive(oracle(str(tmp_path / "a")), str(tmp_path / "a"))
    assert whole == drive(oracle(str(tmp_path / "b")), str(tmp_path / "b"))
    schedule = brackets(9, 3)  # 9 + 5 + 3 = 17 first-round points, 23 trials
    order = [trial_id(p) for p in random_order(SearchSpace.create(GRID).grid(), 0)]
    assert [t for t, epochs in whole if epochs == 1] == order[:9]
    assert len(whole) == 23 and len({t for t, _ in whole}) == 17
    assert [e for _, e in whole] == [r for _, rounds in schedule for n, r in rounds for _ in range(n)]
    found = on_disk(str(tmp_path / "a"))
    full = {t for t, d in found.items() if d["hyperband"]["budgets"][-1] == 9}
    assert len(full) == 1 + 2 + 3  # the last round of each bracket
    assert {t for t, d in found.items() if d["stopped_by"] == STOPPED_BY} == set(found) - full
    assert found[whole[-1][0]]["hyperband"] == {"bracket": 0, "budgets": [9]}
    promoted = [t for t, d in found.items() if d["hyperband"]["budgets"] == [1, 3, 9]]
    assert len(promoted) == 1 and len(found[promoted[0]]["history"]["loss"]) == 9


@pytest.mark.parametrize("killed_at", [1, 5, 10, 12, 13, 20, 23])
def test_an_interruption_anywhere_then_a_rerun_gives_the_uninterrupted_records(tmp_path, killed_at):
    """Killed in its `killed_at`-th trial (part-trained, its record running), a new oracle that knows only the
    records hands that trial out again, then exactly what an uninterrupted search does; the same records."""
    whole = drive(oracle(str(tmp_path / "whole")), str(tmp_path / "whole"))
    d = str(tmp_path / "killed")
    before = drive(oracle(d), d, stop_after=killed_at)
    after = drive(oracle(d), d)
    assert before[:-1] + after == whole and after[0] == before[-1]
    assert on_disk(d) == on_disk(str(tmp_path / "whole"))


def test_a_kill_before_the_stopped_are_marked_marks_them_on_the_rerun(tmp_path, monkeypatch):
    whole = drive(oracle(str(tmp_path / "whole")), str(tmp_path / "whole"))
    d = str(tmp_path / "killed")

    def killed(self, points):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(HyperbandOracle, "_mark_stopped", killed)
        with pytest.raises(KeyboardInterrupt):
            drive(oracle(d), d)
    assert not any(v["stopped_by"] for v in on_disk(d).values())
    assert drive(oracle(d), d) == whole[9:]  # the first round is done: the second starts
    assert on_disk(d) == on_disk(str(tmp_path / "whole"))


def test_the_budget_caps_the_points_and_an_accident_ends_the_run(tmp_path):
    d = str(tmp_path / "d")
    capped = oracle(d, max_trials=11)  # 9 in the first bracket, 2 of its second's 5: the third is empty
    assert capped.trials_planned == 9 + 3 + 1 + 2 + 2
    assert capped.describe() == ("hyperband search: 3 brackets to 9 epochs (factor 3), 17 trials of at most 11 of "
                                 "24 grid points, 0 already finished, 17 to run")
    assert len(drive(capped, d)) == 17
    d = str(tmp_path / "e")
    hyperband = oracle(d)
    values = hyperband.populate_space("unused")["values"]
    train(d, values, status="error", upto=0)  # an accident: its round cannot be decided, the run ends there
    for _ in range(8):
        train(d, hyperband.populate_space("unused")["values"])
    assert hyperband.populate_space("unused")["status"] == "STOPPED"
    tid = trial_id({k: v for k, v in values.items() if not k.startswith("tuner/")})
    assert [(t, k, s) for t, k, s, _ in hyperband.unfinished_executions()] == [(tid, 0, "error")]
    assert drive(oracle(d), d)[0] == (tid, 1)  # the re-run retries it first


def test_a_budget_is_what_done_means_for_a_hyperband_record():
    data = {"status": "completed", "history": {"loss": [1.0]}, "search": {"num_epochs": 9, "use_early_stopping": False},
            "hyperband": {"bracket": 2, "budgets": [1]}}
    assert records.done(data, 1) and not records.done(data, 3) and records.inconsistency(data) is None
    assert records.asked_epochs(data) == 1 and records.asked_epochs({"search": {"num_epochs": 9}}) == 9
    running = {**data, "status": "running", "hyperband": {"bracket": 2, "budgets": [1, 3]}}
    assert result_at(running, 1, "loss") == (True, 1.0) and not result_at(running, 3, "loss")[0]
    assert hyperband_mark(running, {"bracket": 2, "epochs": 1}) == {"bracket": 2, "budgets": [1]}
    assert hyperband_mark(data, {"bracket": 2, "epochs": 3}) == {"bracket": 2, "budgets": [1, 3]}
    # The read side: cut short by its budget (left out of the selection), or ended by early stopping (not).
    assert partial(data) and not partial({**data, "hyperband": {"bracket": 2, "budgets": [1, 3]}})
    assert not partial({k: v for k, v in data.items() if k != "hyperband"})


# ------------------------------------------------------------------------------------- real searches
SMALL = {**GRID, "algorithm": ["bp"], "arch": ["16"], "lr": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=4, use_xla=False, search="hyperband",
                max_trials=6, hyperband_factor=2)


def search(directory, space=SMALL, **settings):
    lines = []
    run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(space), log=lines.append)
    return [line.split()[0] for line in lines if " execution " in line and "=" in line]


def kept(directory):
    """Each record as a re-run must reproduce it (times, workers and resumption notes aside)."""
    fields = ("trial_id", "hparams", "seed", "status", "history", "test", "hyperband", "stopped_by", "search")
    return {(d["trial_id"], d["execution"]): {k: d.get(k) for k in fields}
            for d in map(records.read, records.iter_record_paths(str(directory)))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    return directory, search(directory)


def test_a_search_records_its_schedule_and_the_same_seed_gives_the_same_records(reference, tmp_path):
    directory, ran = reference
    order = [trial_id(p) for p in random_order(SearchSpace.create(SMALL).grid(), 0)]
    # brackets(4, 2): 4 points at 1 epoch, 2 at 2, 1 at 4; 3 at 2 (2 left), 2 at 4; 3 at 4 (none left)
    assert ran[:4] == order[:4] and ran[7:9] == order[4:6] and len(ran) == 11
    found = kept(directory)
    assert len(found) == 6 and {d["hyperband"]["bracket"] for d in found.values()} == {2, 1}
    for d in found.values():
        budgets, epochs = d["hyperband"]["budgets"], records.epochs_done(d["history"])
        assert d["status"] == "completed" and epochs == budgets[-1]
        assert (d["stopped_by"] == STOPPED_BY) == (budgets[-1] < 4)
    assert sum(d["stopped_by"] == STOPPED_BY for d in found.values()) == 3
    assert search(tmp_path / "again") == ran and kept(tmp_path / "again") == found


def test_a_promoted_execution_is_the_one_trained_straight_to_its_budget(reference, tmp_path):
    directory, _ = reference
    promoted = next(d for d in kept(directory).values() if d["hyperband"]["budgets"] == [1, 2, 4])
    space = {**SMALL, "lr": [promoted["hparams"]["lr"]]}
    search(tmp_path / "straight", space=space, search="grid", max_trials=None, hyperband_factor=3)
    (straight,) = kept(tmp_path / "straight").values()
    assert straight["history"] == promoted["history"] and straight["test"] == promoted["test"]


@pytest.mark.parametrize("killed_at", [2, 6, 14])
def test_a_search_interrupted_mid_round_resumes_to_the_same_records(reference, tmp_path, monkeypatch, killed_at):
    """Interrupted at its `killed_at`-th epoch (in a first round, in a promoted execution's extension, in the last
    round of a bracket), the same command again ends with the uninterrupted search's records."""
    directory, ran = reference
    calls = {"n": 0}
    original = execution_module.RecordCallback.on_epoch_end

    def interrupted(self, epoch, logs=None):
        original(self, epoch, logs)
        calls["n"] += 1
        if calls["n"] == killed_at:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(execution_module.RecordCallback, "on_epoch_end", interrupted)
        with pytest.raises(KeyboardInterrupt):
            search(tmp_path / "killed")
    search(tmp_path / "killed")
    assert kept(tmp_path / "killed") == kept(directory)


def test_the_selection_compares_only_executions_trained_to_num_epochs(reference, tmp_path):
    directory, _ = reference
    frame = results.load(str(directory))
    table = results.best(frame, by="algorithm")
    full = {d["trial_id"] for d in kept(directory).values() if d["hyperband"]["budgets"][-1] == 4}
    best_full = min(full, key=lambda t: kept(directory)[(t, 0)]["history"]["val_error_rate"][-1])
    assert list(table["trial_id"]) == [best_full] and table.attrs["partial"] == {"stopped by hyperband": 3}
    assert "not compared: 3 Hyperband executions" in results.tables.console(table, width=200)
    # A stopped execution better at its few epochs than every full one is still not chosen; one not yet decided
    # (its budget short of num_epochs, no mark) neither, and both are said.
    shutil.copytree(directory, tmp_path / "copy")
    stopped = [p for p in records.iter_record_paths(str(tmp_path / "copy")) if records.read(p).get("stopped_by")]
    for path, mark in zip(stopped[:2], (STOPPED_BY, None)):
        data = records.read(path)
        data["history"]["val_error_rate"] = [0.0] * len(data["history"]["val_error_rate"])
        data["stopped_by"] = mark
        io.write_json(path, data)
    table = results.best(results.load(str(tmp_path / "copy")), by="algorithm")
    assert list(table["trial_id"]) == [best_full]
    assert table.attrs["partial"] == {"stopped by hyperband": 2, "not yet decided": 1}
    per = results.execution_scores(results.load(str(tmp_path / "copy")))
    assert per["partial"].sum() == 3 and (per["stopped_by"] == STOPPED_BY).sum() == 2


def test_a_point_with_several_executions_is_promoted_by_their_mean_and_stopped_whole(tmp_path):
    """2 executions a point (trained together, one program, to the trial's budget): brackets(2, 2) runs 2 points
    at 1 epoch, the one of lower mean score at 2, then 1 more point at 2."""
    ran = search(tmp_path, num_epochs=2, max_trials=3, executions_per_trial=2)
    found = kept(tmp_path)
    order = [trial_id(p) for p in random_order(SearchSpace.create(SMALL).grid(), 0)]
    first = {t: sum(found[(t, k)]["history"]["val_error_rate"][0] for k in range(2)) for t in order[:2]}
    promoted = min(order[:2], key=lambda t: (first[t], order.index(t)))
    assert ran == [order[0]] * 2 + [order[1]] * 2 + [promoted] * 2 + [order[2]] * 2
    for (tid, _), d in found.items():
        budgets = {order[2]: [2], promoted: [1, 2]}.get(tid, [1])
        assert d["hyperband"]["budgets"] == budgets and len(d["history"]["loss"]) == budgets[-1]
        assert (d["stopped_by"] == STOPPED_BY) == (budgets == [1])


# ------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("changed", [dict(num_epochs=5), dict(hyperband_factor=3), dict(max_trials=7),
                                     dict(executions_per_trial=2), dict(space={**SMALL, "lr": SMALL["lr"] + [0.3]})])
def test_a_hyperband_experiment_grows_in_nothing(reference, tmp_path, changed):
    directory, _ = reference
    shutil.copytree(directory, tmp_path / "copy")
    before = kept(tmp_path / "copy")
    with pytest.raises(ExperimentMismatch) as e:
        search(tmp_path / "copy", **changed)
    assert "\n" not in str(e.value) and kept(tmp_path / "copy") == before
    if "num_epochs" in changed or "max_trials" in changed:
        assert "it grows in nothing" in str(e.value)


@pytest.mark.parametrize("settings, message", [
    ({"search": "hyperband", "max_trials": 4, "hyperband_factor": 1}, "Invalid hyperband_factor 1: an integer ≥ 2"),
    ({"search": "hyperband", "max_trials": 4, "hyperband_factor": 2.5}, "Invalid hyperband_factor 2.5"),
    ({"search": "hyperband"}, "search 'hyperband' needs max_trials"),
    ({"hyperband_factor": 4}, "Invalid hyperband_factor 4: 3 (the default) unless search is hyperband"),
])
def test_bad_hyperband_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError) as e:
        SearchConfig(dataset="digits", **settings)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_make_oracle_makes_it_one_point_per_trial(tmp_path):
    config = SearchConfig(dataset="digits", search="hyperband", max_trials=5, num_epochs=9, hyperband_factor=3)
    hyperband = make_oracle(SearchSpace.create(GRID).grid(), str(tmp_path), config, cohort_size=8)
    assert isinstance(hyperband, HyperbandOracle) and hyperband.cohort_size == 1
    assert hyperband.schedule == brackets(9, 3) and len(hyperband.order) == 5
    assert SearchConfig.completed({})["hyperband_factor"] == 3


def test_hyperband_with_workers_is_refused(tmp_path, cli_in_process, tiny_preset):
    proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--search", "hyperband", "--max_trials", 2,
                          "--workers", 2)
    assert proc.returncode == 2 and "search hyperband runs in one process" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "exp").rglob("execution_*.json"))


def test_the_help_names_the_flag():
    env = fresh_env()
    done = subprocess.run([sys.executable, "-m", "bpfree", "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert "--hyperband_factor" in done.stdout and "hyperband (keras-tuner's Hyperband" in done.stdout


def test_confirmation_seeds_confirm_the_point_chosen_among_full_budgets(reference, tmp_path):
    directory, _ = reference
    shutil.copytree(directory, tmp_path / "copy")
    config = SearchConfig(**SETTINGS)
    summary = run_search(str(tmp_path / "copy"), config, SearchSpace.create(SMALL), log=lambda *a: None,
                         confirm_seeds=1)
    assert not summary["unfinished"] and summary["ran"] == 0  # nothing of the search trains again
    chosen = results.best(results.load(str(directory)), by="algorithm")["trial_id"].tolist()
    confirmations = [d for d in map(records.read, records.iter_record_paths(str(tmp_path / "copy")))
                     if d.get("confirmation")]
    assert [d["trial_id"] for d in confirmations] == chosen and confirmations[0]["search"]["hyperband_factor"] == 3


KILL_PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 16
search = "hyperband"
max_trials = 6
hyperband_factor = 4
use_xla = false

[space]
algorithm = ["bp"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
dropout = [0.0]
"""


@pytest.mark.slow
def test_a_search_killed_9_in_its_last_round_resumes_to_the_same_records(tmp_path):
    """kill -9 of the whole process group while the bracket's last round extends its point from 4 to 16 epochs
    (6 points at 1 epoch, 4 of them to 4, 1 to 16), then the same command again: the uninterrupted records."""

    preset = tmp_path / "preset.toml"
    preset.write_text(KILL_PRESET)
    search(tmp_path / "whole", num_epochs=16, hyperband_factor=4)
    env = fresh_env()
    command = [sys.executable, "-m", "bpfree", str(tmp_path / "killed"), "--hparams", str(preset),
               "--checkpoint_seconds", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def in_its_last_round():
        now = kept(tmp_path / "killed") if (tmp_path / "killed").exists() else {}
        return any(d["status"] == "running" and (d["hyperband"] or {}).get("budgets") == [1, 4, 16]
                   and records.epochs_done(d["history"]) > 5 for d in now.values())

    kill_9_when(proc, in_its_last_round)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert kept(tmp_path / "killed") == kept(tmp_path / "whole")
