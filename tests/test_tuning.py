"""The tuning suite with real tiny searches: completeness, kill -9 and resume, divergence, results, CLI."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from bpfree import records, results
from bpfree.tuning import SearchConfig, SearchSpace, run_search, trial_id
from bpfree.tuning.lock import ExperimentLock

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 1e-2], "dropout": [0.0]}


def cli(*args, cwd=None, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "bpfree", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, **kwargs)


def statuses(directory):
    out = {}
    for path in records.iter_record_paths(directory):
        data = records.read(path)
        out[(data["trial_id"], data["execution"])] = data
    return out


def test_grid_runs_every_point_once_and_resume_skips_finished(tmp_path):
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=2)
    space = SearchSpace.create(SPACE)
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None)
    done = statuses(summary["project_dir"])
    expected = {(trial_id(p), k) for p in space.grid() for k in range(2)}
    assert set(done) == expected and len(space.grid()) == 4
    assert all(d["status"] == "completed" and len(d["history"]["loss"]) == 2 for d in done.values())
    assert {d["seed"] for d in done.values()} == {0, 1}  # distinct seeds per execution
    mtimes = {p: os.path.getmtime(p) for p in records.iter_record_paths(summary["project_dir"])}
    again = run_search(str(tmp_path), config, space, log=lambda *a: None)
    assert again["ran"] == 0
    assert mtimes == {p: os.path.getmtime(p) for p in records.iter_record_paths(summary["project_dir"])}

    frame = results.load(str(tmp_path))
    assert len(frame) == 4 * 2 * 2
    for column in ("trial_id", "execution", "epoch", "status", "algorithm", "arch", "activation", "batchnorm",
                   "bw_init", "lr", "dropout", "loss", "error_rate", "val_loss", "val_error_rate"):
        assert column in frame, column
    best = results.best(frame, "val_error_rate", by="algorithm", score="best")  # each execution's best epoch
    assert list(best["algorithm"]) == ["bp", "dfa"]
    for _, row in best.iterrows():
        rows = frame[frame["algorithm"] == row["algorithm"]]
        per_trial = rows.groupby(["trial_id", "execution"])["val_error_rate"].min().groupby("trial_id").mean()
        assert row["val_error_rate"] == pytest.approx(per_trial.min())
        assert row["trial_id"] == per_trial.idxmin() and row["lr"] in (1e-3, 1e-2)
    # TensorBoard: scalars per execution and the HParams config.
    tb = os.path.join(summary["project_dir"], "tensorboard")
    assert glob.glob(os.path.join(tb, "_hparams_config", "*", "events*"))
    run = os.path.join(tb, trial_id(space.grid()[0]), "execution_0")  # one run: no train/, validation/ sub-runs
    assert glob.glob(os.path.join(run, "events*")) and not glob.glob(os.path.join(run, "*", "events*"))


@pytest.mark.slow
def test_kill9_mid_trial_then_resume_completes_every_point_once(tmp_path, tiny_preset):
    preset = tiny_preset(12)
    exp = tmp_path / "exp"
    proc = cli(str(exp), "--hparams", str(preset))
    project = None
    deadline = time.time() + 240
    # Kill once at least one trial has completed and another is running.
    while time.time() < deadline:
        time.sleep(0.5)
        if project is None and exp.exists():
            subdirs = [d for d in exp.iterdir() if d.is_dir()]
            project = subdirs[0] if subdirs else None
        if project is not None:
            found = statuses(project)
            if any(d["status"] == "completed" for d in found.values()) and \
                    any(d["status"] == "running" and d["history"] for d in found.values()):
                break
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = statuses(project)
    completed_before = {k: v["history"] for k, v in before.items() if v["status"] == "completed"}
    interrupted = [k for k, v in before.items() if v["status"] == "running"]
    assert completed_before and interrupted

    resumed = cli(str(exp), "--hparams", str(preset))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    after = statuses(project)
    assert len(after) == 6 and all(d["status"] == "completed" for d in after.values())
    for key, history in completed_before.items():
        assert after[key]["history"] == history  # untouched
    for key in interrupted:
        assert len(after[key]["history"]["loss"]) == 12
        # It resumed from its last epoch's checkpoint (not from epoch 0) and kept the epochs it had.
        assert after[key]["resumed_at_epochs"] == [len(before[key]["history"]["loss"])] or \
            after[key]["resumed_at_epochs"] == [len(before[key]["history"]["loss"]) + 1]
        assert after[key]["history"]["loss"][:len(before[key]["history"]["loss"])] == before[key]["history"]["loss"]
    assert not list(project.rglob("*.ckpt.npz"))  # checkpoints go when their execution finishes


def test_diverging_lr_is_recorded_and_the_search_goes_on(tmp_path):
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=2)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "activation": ["linear"], "lr": [1e-3, 1e30]})
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None)
    found = {d["hparams"]["lr"]: d for d in statuses(summary["project_dir"]).values()}
    assert found[1e30]["status"] == "diverged" and found[1e30]["history"]["loss"]
    assert found[1e-3]["status"] == "completed"
    frame = results.load(str(tmp_path))
    assert set(frame["status"]) == {"completed", "diverged"}
    assert results.best(frame, "loss")["lr"].iloc[0] == 1e-3


@pytest.mark.parametrize("args,message", [
    (["--algorithm", "sgd"], "Unknown algorithm 'sgd'; valid: bp, fa, dfa"),
    (["--arch", "500-abc"], "Invalid arch '500-abc'"),
    (["--objective", "accuracy"], "Unknown objective 'accuracy'; valid: loss, val_loss, error_rate, val_error_rate"),
    (["--algorithm", "drtp", "--problem_type", "reconstruction", "--objective", "loss"], "drtp needs class targets"),
    (["--problem_type", "reconstruction", "--objective", "val_error"], "is never logged for reconstruction"),
    (["--dataset", "imagenet9000"], "Unknown dataset 'imagenet9000'"),
    (["--activation", "gelu"], "Unknown activation 'gelu'"),
])
def test_cli_rejects_bad_input_before_training(tmp_path, args, message, cli_in_process):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    preset = os.path.join(root, "hparams", "quickstart.toml")
    if args[:2] == ["--algorithm", "sgd"]:  # one as a real process (exit code through app.run)
        proc = cli(str(tmp_path / "exp"), "--hparams", preset, *args, cwd=root)
        out, err = proc.communicate(timeout=120)
        returncode = proc.returncode
    else:
        done = cli_in_process(tmp_path / "exp", "--hparams", preset, *args)
        returncode, err = done.returncode, done.stderr
    assert returncode == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], err
    assert not list((tmp_path / "exp").rglob("execution_*.json"))


def test_cli_refuses_unwritable_dir_and_a_second_search(tmp_path, cli_in_process):
    preset = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hparams", "quickstart.toml")
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = cli_in_process(blocker / "exp", "--hparams", preset)
    assert done.returncode == 2 and "Cannot create experiment dir" in done.stderr
    project = tmp_path / "exp" / "mnist1d-classification-val_error_rate"
    with ExperimentLock(str(project)):  # flock: a second open file description conflicts, even in-process
        done = cli_in_process(tmp_path / "exp", "--hparams", preset)
    assert done.returncode == 2 and "Another search is running on" in done.stderr


def test_corrupted_record_is_named_and_the_rest_loads(tmp_path, capsys):
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1)
    summary = run_search(str(tmp_path), config, SearchSpace.create(SPACE), log=lambda *a: None)
    paths = records.iter_record_paths(summary["project_dir"])
    with open(paths[0], "w") as f:
        f.write('{"trial_id": "x", "hist')
    errors = []
    frame = results.load(str(tmp_path), errors=errors)
    assert len(frame) == 3 and len(errors) == 1 and paths[0] in errors[0]
    assert results.main([str(tmp_path), "--by", "algorithm", "--objective", "loss"]) == 1
    out, err = capsys.readouterr()
    assert "dfa" in out and paths[0] in err


def test_space_from_registry_and_fixed_values():
    space = SearchSpace.create(SPACE, {"lr": 0.5, "algorithm": "dfa"}, tune_dropout=False)
    assert space.as_dict()["lr"] == (0.5,) and space.as_dict()["algorithm"] == ("dfa",)
    assert space.project_name("digits", "classification", "loss") == "digits-classification-loss-dfa-lr0.5"
    assert trial_id(space.grid()[0]).startswith("dfa-16-tanh-bwortho-lr0.5-")


def test_hypermodel_choices_come_from_the_space():
    import keras_tuner

    from bpfree.tuning import BpfreeHyperModel

    hp = keras_tuner.HyperParameters()
    model = BpfreeHyperModel(SearchSpace.create(SPACE), SearchConfig(dataset="digits"), 64, 10).build(hp)
    assert hp.get("algorithm") == "bp" and isinstance(hp._hps["lr"][0], keras_tuner.engine.hyperparameters.Choice)
    assert model.network_config.arch == (16,)
