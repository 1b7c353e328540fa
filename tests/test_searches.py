"""Random and bayesian searches (`--search`, `--max_trials`; issue 24) keep the grid's guarantees: every execution
recorded, the same sequence of trials from the same seed, after an interruption too, growth defined (a larger
max_trials extends the sequence) or refused, bad values refused in one line before anything trains."""

import math
import os
import subprocess
import sys

import pytest

from bpfree import io, records
from bpfree.tuning import SearchConfig, SearchSpace, run_search, trial_id
from bpfree.tuning import execution as execution_module
from bpfree.tuning.search import ExperimentMismatch
from bpfree.tuning.searches import BayesianOracle, RandomOracle, make_oracle, random_order
from fresh_process import fresh_env, kill_9_when
from search_records import found

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "keras", "keras_tuner")
SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16", "32"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], "dropout": [0.0]}


def loss(point):
    """A made-up objective with a valley at lr 3e-3, dfa and the 16-wide net a little worse."""
    return (math.log10(point["lr"]) + 2.5) ** 2 + 0.3 * (point["algorithm"] == "dfa") + 0.1 * (point["arch"] == "16")


def write(directory, point, status="completed", execution=0):
    io.write_json(records.execution_path(directory, trial_id(point), execution),
                  {"trial_id": trial_id(point), "execution": execution, "hparams": point, "status": status,
                   "history": {"loss": [loss(point)]}})


def drive(oracle, directory, stop_after=None):
    """Hands out trials and writes their records (as the tuner would) until the oracle stops, or leaves
    the `stop_after`-th one interrupted (a "running" record, as a kill mid-trial leaves it)."""
    handed = []
    while (response := oracle.populate_space("unused"))["status"] == "RUNNING":
        point = response["values"]
        handed.append(trial_id(point))
        if stop_after is not None and len(handed) == stop_after:
            write(directory, point, status="running")
            break
        write(directory, point)
    return handed


@pytest.fixture
def grid():
    return SearchSpace.create(SPACE).grid()


# ------------------------------------------------------------------------------------- random
def test_random_order_is_fixed_by_the_seed_and_a_larger_budget_extends_it(grid, tmp_path):
    order = [trial_id(p) for p in random_order(grid, 0)]
    assert order == [trial_id(p) for p in random_order(list(reversed(grid)), 0)]  # not the grid's order
    assert order != [trial_id(p) for p in random_order(grid, 1)] and sorted(order) == sorted(map(trial_id, grid))
    five = RandomOracle(grid, str(tmp_path / "a"), "loss", seed=0, max_trials=5)
    eight = RandomOracle(grid, str(tmp_path / "b"), "loss", seed=0, max_trials=8)
    assert [trial_id(p) for p in five.points] == order[:5] and [trial_id(p) for p in eight.points] == order[:8]
    assert five.describe() == "random search: 5 of 24 grid points, 0 already finished, 5 to run"
    assert drive(five, str(tmp_path / "a")) == order[:5]
    grown = RandomOracle(grid, str(tmp_path / "a"), "loss", seed=0, max_trials=8)  # the same records, more trials
    assert grown.finished_ids == set(order[:5]) and drive(grown, str(tmp_path / "a")) == order[5:8]


# ------------------------------------------------------------------------------------- bayesian
def test_bayesian_sequence_is_reproducible_from_the_seed_and_never_repeats(grid, tmp_path):
    first = drive(BayesianOracle(grid, str(tmp_path / "a"), "loss", seed=0, max_trials=14), str(tmp_path / "a"))
    again = drive(BayesianOracle(grid, str(tmp_path / "b"), "loss", seed=0, max_trials=14), str(tmp_path / "b"))
    other = drive(BayesianOracle(grid, str(tmp_path / "c"), "loss", seed=1, max_trials=14), str(tmp_path / "c"))
    assert first == again and first != other
    assert len(first) == len(set(first)) == 14
    initial = BayesianOracle(grid, str(tmp_path / "d"), "loss", seed=0, max_trials=14).initial_points
    assert initial == 9  # keras-tuner's default: 3 × (algorithm, arch, lr)
    assert first[:initial] == [trial_id(p) for p in random_order(grid, 0)[:initial]]
    # The Gaussian process leads towards the valley: the proposals after the random ones score better.
    scores = {trial_id(p): loss(p) for p in grid}
    assert min(scores[t] for t in first[initial:]) < min(scores[t] for t in first[:initial])


@pytest.mark.parametrize("killed_at", [3, 10, 12])
def test_bayesian_sequence_after_an_interruption_is_the_uninterrupted_one(grid, tmp_path, killed_at):
    """A run interrupted mid-trial (its record "running"), then resumed by a new oracle that knows only the
    records, hands out the interrupted trial again and then exactly what an uninterrupted run does."""
    whole = drive(BayesianOracle(grid, str(tmp_path / "whole"), "loss", seed=0, max_trials=13), str(tmp_path / "whole"))
    d = str(tmp_path / "killed")
    before = drive(BayesianOracle(grid, d, "loss", seed=0, max_trials=13), d, stop_after=killed_at)
    resumed = BayesianOracle(grid, d, "loss", seed=0, max_trials=13)
    assert len(resumed.finished_ids) == killed_at - 1
    after = drive(resumed, d)
    assert before[:-1] + after == whole and after[0] == before[-1]


def test_bayesian_growth_extends_the_sequence_and_an_unfinished_trial_ends_the_run(grid, tmp_path):
    d = str(tmp_path / "d")
    short = drive(BayesianOracle(grid, d, "loss", seed=0, max_trials=10), d)
    longer = BayesianOracle(grid, d, "loss", seed=0, max_trials=12)
    assert longer.describe().endswith("10 already finished, 2 to run")
    assert short + drive(longer, d) == drive(BayesianOracle(grid, str(tmp_path / "e"), "loss", seed=0, max_trials=12),
                                             str(tmp_path / "e"))
    d = str(tmp_path / "f")
    oracle = BayesianOracle(grid, d, "loss", seed=0, max_trials=12)
    point = oracle.populate_space("unused")["values"]
    write(d, point, status="error")  # an accident: its trial must finish before the next can be proposed
    assert oracle.populate_space("unused")["status"] == "STOPPED"
    assert [(t, k, s) for t, k, s, _ in oracle.unfinished_executions()] == [(trial_id(point), 0, "error")]


def test_make_oracle_follows_the_config(grid, tmp_path):
    base = dict(dataset="digits", objective="loss")
    assert type(make_oracle(grid, str(tmp_path), SearchConfig(**base))).__name__ == "GridOracle"
    assert len(make_oracle(grid, str(tmp_path), SearchConfig(**base, search="random", max_trials=3)).points) == 3
    oracle = make_oracle(grid, str(tmp_path), SearchConfig(**base, search="bayesian", max_trials=3))
    assert oracle.trials_planned == 3


# ------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("settings, message", [
    ({"search": "foo"}, "Unknown search 'foo'; valid: grid, random, bayesian, hyperband."),
    ({"search": "random"}, "search 'random' needs max_trials"),
    ({"search": "random", "max_trials": 0}, "Invalid max_trials 0: an integer ≥ 1"),
    ({"search": "bayesian", "max_trials": 2.5}, "Invalid max_trials 2.5"),
    ({"max_trials": 4}, "Invalid max_trials 4: only with search random, bayesian or hyperband"),
])
def test_bad_search_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError) as e:
        SearchConfig(dataset="digits", **settings)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_preset_sets_the_search_and_a_flag_overrides_it():
    config = SearchConfig.from_settings({"search": "random", "max_trials": 7}, {"max_trials": 9})
    assert (config.search, config.max_trials) == ("random", 9)
    assert SearchConfig.completed({})["search"] == "grid"  # a record from before: the grid
    with pytest.raises(ValueError, match="max_trials"):
        SearchConfig.from_settings({"search": "random", "max_trials": "7"})


@pytest.mark.parametrize("flags, message", [
    (["--search", "foo"], "error: Unknown search 'foo'; valid: grid, random, bayesian, hyperband."),
    (["--search", "hyperband", "--max_trials", "3", "--hyperband_factor", "1"], "error: Invalid hyperband_factor 1"),
    (["--search", "random", "--max_trials", "0"], "error: Invalid max_trials 0"),
    (["--max_trials", "3"], "error: Invalid max_trials 3: only with search random, bayesian or hyperband"),
])
def test_the_command_line_refuses_them_with_exit_2_before_tensorflow_loads(tmp_path, flags, message):
    env = fresh_env()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bpfree", str(tmp_path / "exp"), *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    messages = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(messages) == 1 and messages[0].startswith(message), done.stderr[-2000:]
    assert not set(HEAVY) & imported and not (tmp_path / "exp").exists()


def test_bayesian_with_workers_is_refused(tmp_path, cli_in_process, tiny_preset):
    proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--search", "bayesian", "--max_trials", 2,
                          "--workers", 2)
    assert proc.returncode == 2 and "search bayesian runs in one process" in proc.stderr
    assert not list((tmp_path / "exp").rglob("execution_*.json"))


# ------------------------------------------------------------------------------------- real searches
SMALL = {**SPACE, "algorithm": ["bp"], "arch": ["16"], "lr": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=1, use_xla=False)


def search(directory, space=SMALL, **settings):
    lines = []
    run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(space), log=lines.append)
    return [line.split()[0] for line in lines if " execution " in line]


def test_a_random_search_runs_its_sample_records_it_and_grows_by_max_trials(tmp_path):
    order = [trial_id(p) for p in random_order(SearchSpace.create(SMALL).grid(), 0)]
    assert search(tmp_path / "grown", search="random", max_trials=2) == order[:2]
    before = found(tmp_path / "grown")
    assert {d["search"]["search"] for d in before.values()} == {"random"} and len(before) == 2
    assert search(tmp_path / "grown", search="random", max_trials=3) == order[2:3]  # only the new trial runs
    assert search(tmp_path / "fresh", search="random", max_trials=3) == order[:3]
    grown, fresh = found(tmp_path / "grown"), found(tmp_path / "fresh")
    assert grown.keys() == fresh.keys() and all(grown[k]["history"] == fresh[k]["history"] for k in fresh)
    with pytest.raises(ExperimentMismatch, match="max_trials 3 → 2"):  # a smaller sample: refused
        search(tmp_path / "grown", search="random", max_trials=2)
    with pytest.raises(ExperimentMismatch, match="space.lr"):  # new values would reorder the sample
        search(tmp_path / "grown", space={**SMALL, "lr": SMALL["lr"] + [0.3]}, search="random", max_trials=3)


def test_a_bayesian_search_interrupted_mid_trial_resumes_with_the_same_sequence(tmp_path, monkeypatch):
    """3 random trials then 2 proposed by the Gaussian process; interrupted in its 4th trial (as Ctrl-C or a
    kill leaves it), the resumed search runs the 4th again and then what the uninterrupted one ran."""
    settings = dict(search="bayesian", max_trials=5, num_epochs=2)
    whole = search(tmp_path / "whole", **settings)
    assert len(whole) == len(set(whole)) == 5
    calls = {"n": 0}
    original = execution_module.RecordCallback.on_epoch_end

    def interrupted(self, epoch, logs=None):
        original(self, epoch, logs)
        calls["n"] += 1
        if calls["n"] == 7:  # the 4th trial's first epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "killed", **settings)
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", original)
    resumed = search(tmp_path / "killed", **settings)
    assert resumed == whole[3:]
    killed, reference = found(tmp_path / "killed"), found(tmp_path / "whole")
    assert killed.keys() == reference.keys()
    assert all(killed[k]["history"] == reference[k]["history"] for k in reference)
    assert {d["search"]["search"] for d in killed.values()} == {"bayesian"}
    with pytest.raises(ExperimentMismatch, match="grows only in max_trials"):
        search(tmp_path / "killed", **{**settings, "num_epochs": 3})
    assert search(tmp_path / "killed", **{**settings, "max_trials": 6}) == search(
        tmp_path / "six", **{**settings, "max_trials": 6})[5:]


def test_the_size_check_counts_the_trials_a_search_runs():
    """A random or bayesian search over a grid too large to run whole asks no --yes for a few trials."""
    from bpfree.tuning import plan

    space = SearchSpace.create(SPACE)
    assert plan.GridSize.of(space, SearchConfig(dataset="digits")).points == 24
    assert plan.GridSize.of(space, SearchConfig(dataset="digits", search="random", max_trials=5)).points == 5
    assert plan.GridSize.of(space, SearchConfig(dataset="digits", search="bayesian", max_trials=50)).points == 24


KILL_PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 3
search = "bayesian"
max_trials = 5

[space]
algorithm = ["bp"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
dropout = [0.0]
"""


def in_order(directory):
    """The trial ids of `directory`'s records in the order their first epochs ended."""
    return [d["trial_id"] for d in sorted(found(directory).values(), key=lambda d: d["epoch_ends"][0])]


@pytest.mark.slow
def test_a_bayesian_search_killed_9_in_its_fourth_trial_resumes_with_the_same_sequence(tmp_path):
    """The preset's [search] table sets the search; kill -9 of the whole process group mid-trial (after the
    three random trials, in the first one the Gaussian process proposed), then the same command again."""

    preset = tmp_path / "preset.toml"
    preset.write_text(KILL_PRESET)
    search(tmp_path / "whole", space=SMALL, num_epochs=3, search="bayesian", max_trials=5)
    env = fresh_env()
    command = [sys.executable, "-m", "bpfree", str(tmp_path / "killed"), "--hparams", str(preset),
               "--checkpoint_seconds", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def in_its_fourth_trial():
        now = found(tmp_path / "killed") if (tmp_path / "killed").exists() else {}
        return sum(d["status"] == "completed" for d in now.values()) == 3 and any(
            d["status"] == "running" and d["history"] for d in now.values())

    kill_9_when(proc, in_its_fourth_trial, poll_seconds=0.1)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    killed, reference = found(tmp_path / "killed"), found(tmp_path / "whole")
    assert in_order(tmp_path / "killed") == in_order(tmp_path / "whole")
    assert {k: d["history"] for k, d in killed.items()} == {k: d["history"] for k, d in reference.items()}


def test_confirmation_seeds_of_a_bayesian_search_run_and_grow(tmp_path):
    """The chosen points of a random or bayesian search are confirmed as a grid of them (`--confirm_seeds`)."""
    config = SearchConfig(**{**SETTINGS, "search": "bayesian", "max_trials": 3})
    space = SearchSpace.create(SMALL)
    for seeds in (1, 2):  # more confirmation seeds add executions
        summary = run_search(str(tmp_path), config, space, log=lambda *a: None, confirm_seeds=seeds)
        assert not summary["unfinished"] and summary["confirmation"]
    confirmations = [d for d in map(records.read, records.iter_record_paths(str(tmp_path))) if d.get("confirmation")]
    assert len(confirmations) == 2 and {d["search"]["search"] for d in confirmations} == {"grid"}
