"""A CLI that says what it will do (issue 15): --dry_run prints the grid's size, points, settings and an
estimated wall time from a short run of the same search, writing nothing to EXPERIMENT_DIR; a grid above
`plan.ASK_ABOVE` execution-epochs runs only with --yes (exit 2 without it, and train.bash does not retry)."""

import os
import re
import signal
import subprocess
import sys
import tempfile

import pytest

from bpfree.tuning.options import EngineOptions

from bpfree.tuning import cli, estimate, plan
from bpfree.tuning.space import SearchSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GRID = "27,648 points × 1 execution × 100 epochs = 2,764,800 execution-epochs"
DEFAULT_PRESET = os.path.join(ROOT, "hparams", "default.toml")  # the ancestor's full grid
ESTIMATE = re.compile(r"^estimated wall time: \d[\d,.]* (s|min|h|days) on this machine as loaded now "
                      r"\(an estimate, not a bound\)$", re.M)
ONE_POINT = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 1

[space]
algorithm = ["bp"]
arch = ["8"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [{lrs}]
dropout = [0.0]
"""


def files(directory):
    """{path: (size, mtime)} of every file under `directory`."""
    return {os.path.join(root, f): (os.stat(os.path.join(root, f)).st_size, os.stat(os.path.join(root, f)).st_mtime_ns)
            for root, _, names in os.walk(directory) for f in names}


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """tempfile's directory for this test alone, to see that the timing run leaves nothing behind."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def no_search(monkeypatch):
    """`run_search` replaced by a spy that trains nothing: [the grids it was asked to run]."""
    from bpfree.tuning import search

    calls = []

    def spy(experiment_dir, config, space, **kwargs):
        calls.append(space.grid())
        return {"project_dir": experiment_dir, "ran": 0, "seconds": 0.0, "fit_seconds": 0.0, "unfinished": []}

    monkeypatch.setattr(search, "run_search", spy)
    return calls


# ------------------------------------------------------------------------------------------- --dry_run
def test_dry_run_says_what_the_search_would_do_and_writes_nothing(tmp_path, tiny_preset, cli_in_process, own_tmp):
    exp = tmp_path / "exp"
    done = cli_in_process(exp, "--hparams", tiny_preset(1), "--dry_run")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"dry run: nothing is trained and nothing is written to {exp}" in out
    assert "grid: 6 points × 1 execution × 1 epoch = 6 execution-epochs" in out
    assert "searched: algorithm (3): bp, fa, dfa; lr (2): 0.001, 0.01" in out
    assert "fixed: arch 16, activation tanh, batchnorm false, bw_init ortho, dropout 0" in out
    assert re.search(r"first trials: bp-16-tanh-bwortho-lr0\.001-\w{6}, bp-16-tanh-bwortho-lr0\.01-\w{6}, "
                     r"fa-16-tanh-bwortho-lr0\.001-\w{6}, fa-16-tanh-bwortho-lr0\.01-\w{6} … and 2 more",
                     " ".join(out.split())), out
    assert "settings: dataset digits, problem_type classification, objective val_error_rate" in out
    # (whitespace normalised: the settings line wraps where its length puts it)
    assert "members 1 without XLA (one program per structure, 1 of its executions at a time" in " ".join(out.split())
    assert ESTIMATE.search(out), out
    how = " ".join(out[out.index("how: "):].split())
    assert how.startswith("how: the search itself ran 3 of the grid's 3 (algorithm, arch) pairs for 2 epochs in a "
                          "temporary directory ("), how
    assert "one execution of each pair's first point" in how  # without XLA a program holds one member
    assert not exp.exists() and not list(own_tmp.glob("bpfree-dry-run-*"))


def test_dry_run_counts_what_the_experiment_holds_and_changes_nothing(tmp_path, cli_in_process, own_tmp):
    preset, exp = tmp_path / "one.toml", tmp_path / "exp"
    preset.write_text(ONE_POINT.format(lrs="1e-3"))
    assert cli_in_process(exp, "--hparams", preset).returncode == 0
    before = files(exp)
    done = cli_in_process(exp, "--hparams", preset, "--dry_run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already finished: 1 of 1 points" in done.stdout
    assert "estimated wall time: none, every point is finished" in done.stdout
    grown = cli_in_process(exp, "--hparams", preset, "--num_epochs", "2", "--dry_run")  # growth: the search extends
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "already finished: 0 of 1 points" in grown.stdout and "grows the experiment" in grown.stdout
    assert ESTIMATE.search(grown.stdout), grown.stdout
    changed = cli_in_process(exp, "--hparams", preset, "--batch_size", "16", "--dry_run")
    assert changed.returncode == 2 and "was recorded with other search settings (batch_size 64 → 16" in changed.stderr
    assert files(exp) == before and not list(own_tmp.glob("bpfree-dry-run-*"))


def test_dry_run_refuses_what_the_search_refuses(tmp_path, tiny_preset, cli_in_process):
    done = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--dataset", "mnist1d", "--arch",
                          "conv8k3", "--dry_run")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.splitlines()[0]]
    assert done.stderr.startswith("error: Invalid arch 'conv8k3' for dataset 'mnist1d': convolutions need images")
    assert not (tmp_path / "exp").exists()


def test_dry_run_of_a_large_image_set_times_a_subsample(tmp_path, cli_in_process, own_tmp, monkeypatch):
    """mnist through tfds' mock data: a conv arch, epochs timed on a cut of the training set and scaled."""
    import tensorflow_datasets as tfds

    preset = tmp_path / "lenet.toml"
    preset.write_text(ONE_POINT.format(lrs="1e-3").replace('"digits"', '"mnist"').replace('["8"]', '["conv2k3-8"]'))
    monkeypatch.setenv("BPFREE_TFDS_DOWNLOAD", "0")
    with tfds.testing.mock_data(num_examples=200):
        done = cli_in_process(tmp_path / "exp", "--hparams", preset, "--dry_run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert ESTIMATE.search(done.stdout), done.stdout
    assert (f"epochs were timed on about {estimate.TIMING_EXAMPLES:,} of the 54,000 training examples and scaled by "
            f"{54000 / estimate.TIMING_EXAMPLES:.3g}") in " ".join(done.stdout.split())
    assert "one execution of each pair's first point" in " ".join(done.stdout.split())
    assert not (tmp_path / "exp").exists()


def test_help_lists_dry_run_and_yes():
    text = cli.help_text()
    assert "  --[no]dry_run\n" in text and "  --[no]yes\n" in text
    assert f"Run a grid of more than {plan.ASK_ABOVE:,} execution-epochs" in " ".join(text.split())


# ------------------------------------------------------------------------------------------- --yes
def test_a_grid_above_the_threshold_runs_only_with_yes(tmp_path, cli_in_process, no_search):
    """hparams/default.toml on digits: 27,648 points × 100 epochs."""
    refused = cli_in_process(tmp_path / "exp", "--hparams", DEFAULT_PRESET, "--dataset", "digits")
    assert refused.returncode == 2 and not no_search
    assert refused.stderr.splitlines() == [
        f"error: The grid is {DEFAULT_GRID}, above the 10,000 a search runs without asking; pass --yes to run it, "
        "--dry_run to see its points and an estimated time, or fix some hparams (--lr, --arch, ...) to search fewer."]
    assert not (tmp_path / "exp").exists()
    assert cli_in_process(tmp_path / "exp", "--hparams", DEFAULT_PRESET, "--dataset", "digits", "--yes").returncode == 0
    assert len(no_search) == 1 and len(no_search[0]) == 27648


@pytest.mark.parametrize("epochs,runs", [(100, True), (101, False)])
def test_the_threshold_counts_execution_epochs(tmp_path, cli_in_process, no_search, epochs, runs):
    preset = tmp_path / "hundred.toml"  # 5 rules × 20 lrs = 100 points
    lrs = ", ".join(f"{k}e-4" for k in range(1, 21))
    preset.write_text(ONE_POINT.format(lrs=lrs).replace('["bp"]', '["bp", "fa", "dfa", "drtp", "cce"]'))
    done = cli_in_process(tmp_path / "exp", "--hparams", preset, "--num_epochs", epochs)
    assert (done.returncode == 0) is runs and bool(no_search) is runs, done.stderr
    assert runs or "100 points × 1 execution × 101 epochs = 10,100 execution-epochs, above the 10,000" in done.stderr


def test_a_bad_point_is_said_before_the_size(tmp_path, cli_in_process, no_search):
    done = cli_in_process(tmp_path / "exp", "--hparams", DEFAULT_PRESET, "--dataset", "mnist1d", "--arch", "conv8k3")
    assert done.returncode == 2 and not no_search
    assert done.stderr.startswith("error: Invalid arch 'conv8k3' for dataset 'mnist1d'"), done.stderr


def test_every_shipped_preset_runs_without_yes():
    """Only hparams/default.toml (the ancestor's full space) and the DFC table's full protocol (7 rules × 3 lr × 5 seeds
    × 100 epochs, run by `python -m bpfree.benchmarks dfc_fc --full`, which asks no --yes) are above the threshold."""
    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.presets import load_preset

    above = []
    names = [n for n in os.listdir(os.path.join(ROOT, "hparams")) if n.endswith(".toml")]
    names += [f"benchmarks/{n}" for n in os.listdir(os.path.join(ROOT, "hparams", "benchmarks")) if n.endswith(".toml")]
    for name in sorted(names):
        search, space = load_preset(os.path.join(ROOT, "hparams", name))
        config = SearchConfig.from_settings(search)
        size = plan.GridSize.of(SearchSpace.create(space, tune_dropout=config.tunes_dropout), config)
        if size.execution_epochs > plan.ASK_ABOVE:
            above.append(name)
    assert above == ["benchmarks/dfc_fc.toml", "default.toml"]


# ------------------------------------------------------------------------------------------- train.bash
def train_bash(tmp_path, *args):
    """train.bash with this interpreter (BPFREE_SYSTEM_PYTHON and a `python3` wrapper), in its own group."""
    wrapper = tmp_path / "bin" / "python3"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "BPFREE_SYSTEM_PYTHON": "1",
           "PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(["bash", os.path.join(ROOT, "train.bash"), *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc, timeout):
    """(stdout, stderr) of `proc`; a search still running at `timeout` is stopped (train.bash's SIGTERM trap
    stops the search it started) and the test fails."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
        pytest.fail(f"train.bash still ran after {timeout} s")


def test_train_bash_does_not_retry_a_grid_refused_for_its_size(tmp_path):
    proc = train_bash(tmp_path, tmp_path / "exp", "--hparams", DEFAULT_PRESET, "--dataset", "digits")
    _, err = finish(proc, timeout=240)
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"The grid is {DEFAULT_GRID}" in errors[0], err
    assert "restart" not in err
    assert (tmp_path / "exp" / "status").read_text().startswith("failed")


def test_train_bash_dry_run_writes_nothing(tmp_path):
    preset = tmp_path / "one.toml"
    preset.write_text(ONE_POINT.format(lrs="1e-3"))
    proc = train_bash(tmp_path, tmp_path / "exp", "--hparams", preset, "--dry_run")
    out, err = finish(proc, timeout=300)
    assert proc.returncode == 0, err
    assert "grid: 1 point × 1 execution × 1 epoch = 1 execution-epoch" in out and ESTIMATE.search(out), out
    assert not (tmp_path / "exp").exists()


# ------------------------------------------------------------------------------------------- the estimate
def points_of(space):
    return SearchSpace.create({"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"],
                               "batchnorm": [False], "bw_init": ["ortho"], "dropout": [0.0], **space}).grid()


def test_a_structures_set_up_is_counted_once_and_each_groups_epochs_every_time():
    """bp: 3 lrs × 2 executions = 6 executions in groups of 4 → one set-up, 2 groups × 5 epochs; dfa trains
    one at a time (like GLE): a set-up and 5 epochs for every 4 of its 6 executions."""
    from bpfree.tuning.config import SearchConfig

    points = points_of({"lr": [1e-4, 1e-3, 1e-2]})
    config = SearchConfig(dataset="digits", num_epochs=5, executions_per_trial=2)
    timings = {("bp", "16"): estimate.PairTiming(setup=10.0, epoch=1.0),
               ("dfa", "16"): estimate.PairTiming(setup=4.0, epoch=2.0, alone=True)}
    assert estimate.timed_slots(points, config, engine=EngineOptions(members=4)) == 4
    assert estimate.extrapolate(points, config, EngineOptions(members=4), timings, slots=4) == pytest.approx((10 + 2 * 5) + 6 / 4 * (4 + 10))
    assert estimate.extrapolate(points, config, EngineOptions(members=4), timings, slots=4, scale=3) == pytest.approx(
        (10 + 2 * 5 * 3) + 6 / 4 * (4 + 10 * 3))
    one = {pair: estimate.PairTiming(10.0, 1.0) for pair in timings}  # through fit: each execution its own set-up
    assert estimate.timed_slots(points, config, engine=EngineOptions(fit=True)) == 1
    assert estimate.extrapolate(points, config, EngineOptions(fit=True), one, slots=1) == pytest.approx(2 * 6 * (10 + 5))
    assert estimate.timed_slots(points_of({"lr": [1e-3]}), config, engine=EngineOptions(members=4)) == 2  # fewer than a group


def test_an_untimed_pair_costs_its_row_times_its_column_over_the_base():
    t = estimate.PairTiming
    timed = {("bp", "a"): t(2.0, 1.0), ("dfa", "a"): t(4.0, 3.0, True), ("bp", "b"): t(6.0, 2.0)}
    pairs = [("bp", "a"), ("dfa", "a"), ("bp", "b"), ("dfa", "b")]
    assert estimate.complete(timed, pairs, "bp", "a")[("dfa", "b")] == t(4.0 * 6.0 / 2.0, 3.0 * 2.0 / 1.0, True)
    lone = estimate.complete({("bp", "a"): t(2.0, 1.0)}, [("bp", "a"), ("fa", "a")], "bp", "a")
    assert lone[("fa", "a")] == t(2.0, 1.0)  # no record to go by: the mean of the timed pairs


def test_epochs_that_overlap_are_one_groups_and_epochs_one_after_another_add_up():
    assert estimate.union_length([(0.0, 1.0), (0.1, 1.1), (0.05, 1.0)]) == pytest.approx(1.1)
    assert estimate.union_length([(0.0, 1.0), (5.0, 6.5)]) == pytest.approx(2.5)


def test_a_large_training_set_is_timed_on_a_cut_of_it():
    from bpfree.tuning.config import SearchConfig

    mnist = SearchConfig(dataset="mnist", num_epochs=50, executions_per_trial=3, use_early_stopping=True)
    timing, (full, timed) = estimate.timing_config(mnist, slots=4)
    assert (full, timed) == (54000, estimate.TIMING_EXAMPLES)
    assert (timing.num_epochs, timing.executions_per_trial, timing.use_early_stopping) == (2, 4, False)
    kept = 60000 * (1 - timing.validation_frac) * timing.examples_frac  # what datasets.load keeps to train on
    assert kept == pytest.approx(estimate.TIMING_EXAMPLES)
    assert 60000 * timing.validation_frac == pytest.approx(6000 * estimate.TIMING_EXAMPLES / 54000)
    digits = SearchConfig(dataset="digits")
    assert estimate.timing_config(digits, slots=1) == (
        SearchConfig(dataset="digits", num_epochs=2, executions_per_trial=1), (1293, 1293))


@pytest.mark.parametrize("seconds,text", [(40, "40 s"), (210, "3.5 min"), (7560, "2.1 h"), (5.5e5, "6.4 days"),
                                          (1.04e6, "12 days")])
def test_durations_read_at_a_glance(seconds, text):
    assert estimate.format_seconds(seconds) == text


def test_the_estimate_says_how_it_was_made_and_what_the_timing_run_met():
    from bpfree.tuning.config import SearchConfig

    config = SearchConfig(dataset="mnist", num_epochs=50, use_early_stopping=True)
    made = estimate.Estimate(seconds=7560.0, pairs=36, timed=11, slots=4, examples=(54000, 4096), timing_seconds=80,
                             unfinished=(("bp-500-tanh-bwortho-lr0.1-2a3e39", 0, "error", "OSError: disk full\nmore"),))
    text = "\n".join(made.lines(config))
    assert text.startswith("estimated wall time: 2.1 h on this machine as loaded now (an estimate, not a bound)\n")
    how = " ".join(text[text.index("how: "):].split())
    for part in ("how: the search itself ran 11 of the grid's 36 (algorithm, arch) pairs for 2 epochs in a temporary "
                 "directory (80 s, nothing kept): 4 executions of each pair's first point as the members of one program",
                 "plus its groups × 50 epochs at the timed pace",
                 "an untimed pair costs t(algorithm, arch0) · t(algorithm0, arch) / t(algorithm0, arch0)",
                 "epochs were timed on about 4,096 of the 54,000 training examples and scaled by 13.2",
                 "early stopping may end executions sooner.",
                 "warning: 1 timed execution did not finish (first: bp-500-tanh-bwortho-lr0.1-2a3e39 execution 0: "
                 "error, OSError: disk full); the search may meet the same"):
        assert part in how, (part, how)
    assert all(len(line) <= 100 for line in text.splitlines())
