"""Searches a researcher can trust: the same numbers whatever ran before, resume inside an execution,
accidents retried and reported, corrupt records repaired, records that carry their settings."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from bpfree import records, results
from bpfree.tuning import SearchConfig, SearchSpace, run_search, tensorboard_runs, trial_id
from bpfree.tuning import execution as execution_module
from bpfree.tuning.search import ExperimentMismatch
from fresh_process import kill_9_when
from search_records import found as histories

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-3, 1e-2], "dropout": [0.1]}
PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
batch_size = 64
num_epochs = {epochs}
executions_per_trial = 2
use_xla = false

[space]
algorithm = ["bp", "dfa"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-2]
dropout = [0.1]
"""
# Tiny nets train faster without XLA (its compile dominates); the compile mode does not change what is
# tested here, and tests/test_compile_modes.py shows every mode gives the same update.
FAST = {"use_xla": False}


def quiet(*args):
    pass


def cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "bpfree", *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def interrupt_at(monkeypatch, epoch, before_checkpoint=False):
    """Makes the next execution stop with KeyboardInterrupt at the end of `epoch` (after its checkpoint
    and record are written, or before when `before_checkpoint`), as a kill would. Checkpoints are
    written every epoch (``checkpoint_seconds`` 0) until `restore` is called."""
    original = execution_module.RecordCallback.on_epoch_end
    original_init = execution_module.RecordCallback.__init__

    def every_epoch(self, execution, num_epochs, checkpoint_seconds):
        original_init(self, execution, num_epochs, 0)

    def on_epoch_end(self, e, logs=None):
        if e == epoch and before_checkpoint:
            raise KeyboardInterrupt
        original(self, e, logs)
        if e == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", on_epoch_end)
    monkeypatch.setattr(execution_module.RecordCallback, "__init__", every_epoch)

    def restore():
        monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", original)
        monkeypatch.setattr(execution_module.RecordCallback, "__init__", original_init)

    return restore


# ------------------------------------------------------------------------------------- reproducibility
def test_records_are_identical_uninterrupted_point_by_point_killed_and_with_two_workers(tmp_path):
    """Item 1: every execution's data order, weights, feedback and dropout follow from (search seed,
    trial id, execution) alone, not from what ran before it in the process."""
    # Enough epochs that the kill below finds an execution mid-way: at 8 the whole search took 2 s on a
    # quiet machine, and the poll could miss it (the search had ended before the kill).
    epochs = 30
    preset = tmp_path / "preset.toml"
    preset.write_text(PRESET.format(epochs=epochs))
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=epochs, executions_per_trial=2,
                          **FAST)
    space = SearchSpace.create({**SPACE, "lr": [1e-2]})
    run_search(str(tmp_path / "grid"), config, space, log=quiet)
    reference = {k: v["history"] for k, v in histories(tmp_path / "grid").items()}
    assert len(reference) == 4

    for point in reversed(space.grid()):  # each point alone, in the opposite order
        alone = SearchSpace.create(SPACE, {"algorithm": point["algorithm"], "lr": point["lr"]})
        assert len(alone.grid()) == 1
        run_search(str(tmp_path / "alone"), config, alone, log=quiet)
    assert {k: v["history"] for k, v in histories(tmp_path / "alone").items()} == reference

    # kill -9 while an execution is mid-way (a checkpoint exists), then resume.
    proc = cli(tmp_path / "killed", "--hparams", preset, "--checkpoint_seconds", 0)

    def mid_way():
        found = histories(tmp_path / "killed") if (tmp_path / "killed").exists() else {}
        return any(d["status"] == "completed" for d in found.values()) and \
            any(d["status"] == "running" and d["history"] for d in found.values()) and \
            bool(list((tmp_path / "killed").rglob("*.ckpt.npz")))

    kill_9_when(proc, mid_way, seconds=240)
    resumed = cli(tmp_path / "killed", "--hparams", preset, "--checkpoint_seconds", 0)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    killed = histories(tmp_path / "killed")
    assert any(d.get("resumed_at_epochs") for d in killed.values()), "no execution resumed mid-way"
    assert {k: v["history"] for k, v in killed.items()} == reference

    workers = cli(tmp_path / "workers", "--hparams", preset, "--workers", "2")
    out, _ = workers.communicate(timeout=400)
    assert workers.returncode == 0, out[-3000:]
    assert {k: v["history"] for k, v in histories(tmp_path / "workers").items()} == reference


# ------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("algorithm,point,options", [
    ("bp", {"dropout": [0.2]}, {"use_early_stopping": True, "early_stopping_patience": 2}),  # dropout RNG
    ("gait", {"arch": ["64"], "activation": ["lrelu"], "dropout": [0.0]}, FAST),  # invertible
    ("dtp", {"dropout": [0.0]}, FAST),  # the rule's own state: DTP's noise seed and schedule
    ("gle", {"dropout": [0.0], "gle": {"steps": [3]}}, FAST),  # continuous time: its own model class
])
def test_execution_killed_after_epoch_k_resumes_bitwise(tmp_path, monkeypatch, algorithm, point, options):
    """Item 9: a checkpoint every epoch; the resumed execution's record equals the uninterrupted one."""
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=5, **options)
    space = SearchSpace.create({**SPACE, "algorithm": [algorithm], "lr": [1e-2], **point})
    run_search(str(tmp_path / "once"), config, space, log=quiet)
    restore = interrupt_at(monkeypatch, epoch=1)
    with pytest.raises(KeyboardInterrupt):
        run_search(str(tmp_path / "twice"), config, space, log=quiet)
    restore()
    (stopped,) = histories(tmp_path / "twice").values()
    assert stopped["status"] == "error" and len(stopped["history"]["loss"]) == 2
    assert list((tmp_path / "twice").rglob("*.ckpt.npz"))
    summary = run_search(str(tmp_path / "twice"), config, space, log=quiet)
    (once,), (twice,) = histories(tmp_path / "once").values(), histories(tmp_path / "twice").values()
    assert twice["resumed_at_epochs"] == [2] and twice["status"] == "completed"
    assert twice["history"] == once["history"]  # bitwise: the same floats
    assert summary["unfinished"] == [] and not list((tmp_path / "twice").rglob("*.ckpt.npz"))


def test_killed_in_its_first_epoch_starts_over_with_old_record_and_tensorboard_run_set_aside(tmp_path, monkeypatch):
    """Item 8: a killed attempt's TensorBoard run is moved aside with its record (no epoch 0 twice)."""
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=2, **FAST)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    restore = interrupt_at(monkeypatch, epoch=0, before_checkpoint=True)
    with pytest.raises(KeyboardInterrupt):
        run_search(str(tmp_path), config, space, log=quiet)
    restore()
    summary = run_search(str(tmp_path), config, space, log=quiet)
    tid = trial_id(space.grid()[0])
    tb = os.path.join(summary["project_dir"], "tensorboard", tid)
    assert sorted(n.split("_", 2)[0] for n in os.listdir(tb)) == ["execution", "interrupted"]
    kept = os.listdir(os.path.join(summary["project_dir"], "records", tid))
    assert any(n.startswith("interrupted_") for n in kept) and "execution_0.json" in kept
    (data,) = histories(summary["project_dir"]).values()
    assert data["status"] == "completed" and len(data["history"]["loss"]) == 2


# ------------------------------------------------------------------------------------- accidents
def test_an_accident_in_fit_is_retried_and_the_search_exits_nonzero(tmp_path, monkeypatch):
    """Item 3: a disk that fills up while TensorBoard writes is not a permanent 'failed'."""
    from absl import flags

    from bpfree.tuning import cli as cli_module

    original = tensorboard_runs.EpochScalars.on_epoch_end
    calls = []

    def full_disk(self, epoch, logs=None):
        calls.append(epoch)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, epoch, logs)

    monkeypatch.setattr(tensorboard_runs.EpochScalars, "on_epoch_end", full_disk)
    preset = tmp_path / "preset.toml"
    preset.write_text(PRESET.format(epochs=2).replace('["bp", "dfa"]', '["bp"]').replace("[1e-2]", "[1e-3, 1e-2]")
                      .replace("executions_per_trial = 2", "executions_per_trial = 1"))
    argv = ["bpfree", str(tmp_path / "exp"), f"--hparams={preset}"]
    flags.FLAGS.unparse_flags()
    argv = flags.FLAGS(argv)
    try:
        assert cli_module.main(argv) == 3
        found = histories(tmp_path / "exp")
        assert sorted(d["status"] for d in found.values()) == ["completed", "error"]
        assert "No space left on device" in next(d["error"] for d in found.values() if d["status"] == "error")
        monkeypatch.setattr(tensorboard_runs.EpochScalars, "on_epoch_end", original)
        assert cli_module.main(argv) == 0  # the accident runs again; the finished point does not
    finally:
        flags.FLAGS.unparse_flags()
    found = histories(tmp_path / "exp")
    assert [d["status"] for d in found.values()] == ["completed", "completed"]
    best = results.best(results.load(str(tmp_path / "exp")), "val_error_rate")
    assert len(best) == 2 and best["executions"].tolist() == [1, 1]


# ------------------------------------------------------------------------------------- corrupt records
CORRUPT = {"truncated": b'{"trial_id": "x", "hist', "empty": b"", "garbage": b"\x00\xff\xfe garbage",
           "null": b"null", "list": b"[1, 2]", "wrong types": json.dumps(
               {"trial_id": 3, "execution": "0", "hparams": [], "status": "done", "history": {"loss": "x"}}).encode()}


def test_corrupt_records_are_moved_aside_and_their_executions_run_again(tmp_path, capsys):
    """Item 5: whatever a record file holds, the reader skips it and the search repairs it."""
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1, **FAST)
    space = SearchSpace.create({**SPACE, "lr": [1e-3, 3e-3, 1e-2], "dropout": [0.0]})
    summary = run_search(str(tmp_path), config, space, log=quiet)
    paths = records.iter_record_paths(summary["project_dir"])
    assert len(paths) == len(CORRUPT)
    for path, content in zip(paths, CORRUPT.values()):
        with open(path, "wb") as f:
            f.write(content)
    errors = []
    assert results.load(str(tmp_path), errors=errors).empty and len(errors) == len(CORRUPT)
    lines = []
    summary = run_search(str(tmp_path), config, space, log=lines.append)
    assert summary["ran"] == len(CORRUPT) and summary["unfinished"] == []
    assert sum("corrupt record moved aside" in l for l in lines) == len(CORRUPT)
    assert all(d["status"] == "completed" for d in histories(summary["project_dir"]).values())
    assert len(list((tmp_path).rglob("corrupt_*_execution_0.json"))) == len(CORRUPT)
    assert len(results.load(str(tmp_path))) == len(CORRUPT)
    assert results.main([str(tmp_path)]) == 0


# ------------------------------------------------------------------------------------- settings
def test_a_resume_with_other_settings_is_refused_even_without_config_json(tmp_path):
    """Item 6: every record carries the settings that shaped it."""
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=2, **FAST)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    summary = run_search(str(tmp_path), config, space, log=quiet)
    (data,) = histories(summary["project_dir"]).values()
    assert data["search"]["num_epochs"] == 2 and data["search"]["batch_size"] == 64
    os.remove(os.path.join(summary["project_dir"], "config.json"))
    # (more epochs or executions grow the experiment instead: tests/test_grow.py)
    for change in ({"num_epochs": 1}, {"batch_size": 32}, {"seed": 1}, {"examples_frac": 0.5}):
        other = SearchConfig(**{**config.to_json(), "trackers": (), **change})
        with pytest.raises(ExperimentMismatch, match=next(iter(change))):
            run_search(str(tmp_path), other, space, log=quiet)
    assert run_search(str(tmp_path), config, space, log=quiet)["ran"] == 0


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"search": 1}', b"\xff\xfe"])
def test_a_corrupt_config_json_is_named(tmp_path, content):
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    directory = os.path.join(tmp_path, space.project_name("digits", "classification", "loss"))
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "wb") as f:
        f.write(content)
    with pytest.raises(ExperimentMismatch, match="config.json"):
        run_search(str(tmp_path), config, space, log=quiet)


# ------------------------------------------------------------------------------------- files
def test_records_are_strict_json_and_readable_by_the_group(tmp_path):
    """Item 8: null, not bare NaN; records, configs and caches 0644 under umask 022 (not 0600)."""
    old = os.umask(0o022)
    try:
        config = SearchConfig(dataset="digits", objective="loss", num_epochs=2, **FAST)
        space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "activation": ["linear"], "lr": [1e30],
                                    "dropout": [0.0]})
        summary = run_search(str(tmp_path), config, space, log=quiet)
    finally:
        os.umask(old)
    (path,) = records.iter_record_paths(summary["project_dir"])

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    data = json.loads(open(path).read(), parse_constant=refuse)
    assert data["status"] == "diverged" and None in data["history"]["loss"]
    cache = os.environ["BPFREE_CACHE_DIR"]
    for file in [path, os.path.join(summary["project_dir"], "config.json")] + [
            os.path.join(cache, f) for f in os.listdir(cache)]:
        assert stat.S_IMODE(os.stat(file).st_mode) & 0o044 == 0o044, file


def test_a_tuner_id_that_names_a_path_never_deletes_records(tmp_path, monkeypatch):
    """Item 7: KERASTUNER_TUNER_ID=../records made keras-tuner delete the records, even in local mode."""
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "../records")
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1, **FAST)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    summary = run_search(str(tmp_path), config, space, log=quiet)
    before = histories(summary["project_dir"])
    assert len(before) == 1
    assert run_search(str(tmp_path), config, space, log=quiet)["ran"] == 0
    assert histories(summary["project_dir"]) == before


def test_a_write_left_half_done_by_a_kill_is_removed_on_resume(tmp_path):
    """kill -9 during a checkpoint or record write leaves write_atomic's temporary file behind; the next
    search (holding the lock) removes those older than itself and keeps everything else."""
    config = SearchConfig(dataset="xor", objective="loss", num_epochs=1, **FAST)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    summary = run_search(str(tmp_path), config, space, log=quiet)
    project = summary["project_dir"]
    records_dir = os.path.join(project, records.RECORDS_DIRNAME)
    stale = os.path.join(records_dir, ".tmp-abc123.ckpt.npz")
    with open(stale, "wb") as f:
        f.write(b"half a checkpoint")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    kept = sorted(str(p) for p in __import__("pathlib").Path(project).rglob("*") if p.is_file()
                  and not p.name.startswith(".tmp-") and "keras_tuner" not in str(p))
    run_search(str(tmp_path), config, space, log=quiet)
    assert not os.path.exists(stale)
    assert all(os.path.exists(p) for p in kept)
