"""Faults that used to block or change an experiment (issue 26): corrupt or foreign checkpoints, records
that contradict their file name or themselves. Each is named in one line, set aside, and its execution
goes on from its last good state or from epoch 0; the results reader skips and names them."""

import json
import os
import shutil

import numpy as np
import pytest

from bpfree import checkpoints, records, results
from bpfree.tuning import SearchConfig, SearchSpace, run_search
from bpfree.tuning import execution as execution_module
from search_records import found

SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-2, 1e-3], "dropout": [0.0]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=2, use_xla=False)


def search(directory, **settings):
    lines = []
    summary = run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(SPACE),
                         log=lines.append)
    return summary, lines


def corrupt(path, how, other=None):
    data = open(path, "rb").read()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = b""
    elif how == "bit-flipped":  # a bit in the arrays' bytes: the zip's CRC no longer matches
        data = bytearray(data)
        data[len(data) // 2] ^= 0x10
        data = bytes(data)
    elif how == "foreign":  # the same model's checkpoint, of another execution
        data = open(other, "rb").read()
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The records of a 3-epoch search never interrupted."""
    directory = tmp_path_factory.mktemp("reference")
    search(directory, num_epochs=3)
    return {k: v["history"] for k, v in found(directory).items()}


KINDS = ["truncated", "empty", "bit-flipped", "foreign"]


@pytest.mark.parametrize("how", KINDS)
def test_a_corrupt_checkpoint_is_set_aside_and_its_execution_starts_over(tmp_path, monkeypatch, how, reference):
    """A killed search's checkpoint, damaged: the next run names it, moves it aside and finishes."""
    original, original_init = execution_module.RecordCallback.on_epoch_end, execution_module.RecordCallback.__init__

    def killed_after_epoch_1(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(execution_module.RecordCallback, "__init__", lambda self, run, n, s: original_init(self, run, n, 0))
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", killed_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, num_epochs=3)
    monkeypatch.undo()
    ckpts = sorted(tmp_path.rglob("execution_0.ckpt.npz"))
    assert ckpts, "no checkpoint to corrupt"
    for path in ckpts:  # each says whose it is
        assert json.loads(str(np_load(path)["meta"]))["identity"] == checkpoints.identity(str(path))
    bad = ckpts[0]
    if how == "foreign":  # another execution's checkpoint of the same model, copied here (it names its own)
        data = np_load(bad)
        meta = json.loads(str(data["meta"]))
        meta["identity"] = {**meta["identity"], "execution": 5}
        data["meta"] = np.array(json.dumps(meta))
        with open(bad, "wb") as f:
            np.savez(f, **data)
    else:
        corrupt(bad, how)
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    named = [line for line in lines if "checkpoint" in line.lower() and "moved aside" in line]
    assert len(named) == 1 and "\n" not in named[0], lines
    assert [p.name.endswith("_execution_0.ckpt.npz") for p in bad.parent.glob("corrupt_*")] == [True]
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert results.main([str(tmp_path)]) == 0


def np_load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("how", KINDS)
def test_a_corrupt_final_state_is_set_aside_when_growing(tmp_path, how, reference):
    """Growing the epochs resumes from `.final.npz`; a damaged or foreign one restarts its execution."""
    search(tmp_path, num_epochs=2)
    finals = sorted(tmp_path.rglob("execution_0.final.npz"))
    assert len(finals) == 2
    corrupt(finals[0], how, other=finals[1])
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    assert sum("moved aside" in line for line in lines) == 1, lines
    assert sum("extending to 3 epochs" in line for line in lines) == 1, lines
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference


def test_a_checkpoint_without_identity_still_restores(tmp_path):
    """Checkpoints written before they recorded whose they are restore as before."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    path = str(tmp_path / "records" / "t" / "execution_0.ckpt.npz")
    checkpoints.save(path, model, 1, {"loss": [1.0]})
    data = np_load(path)
    meta = json.loads(str(data["meta"]))
    del meta["identity"]
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path[: -len(".npz")], **data)
    assert checkpoints.restore(path, model) == (1, {"loss": [1.0]})
    shutil.move(path, str(tmp_path / "records" / "t" / "execution_1.ckpt.npz"))
    assert checkpoints.restore(str(tmp_path / "records" / "t" / "execution_1.ckpt.npz"), model)[0] == 1


# ------------------------------------------------------------------------------------- records
def test_a_record_copied_over_another_points_file_is_set_aside_and_rerun(tmp_path, reference):
    """A's record in B's file: B is not finished (and A is not counted twice); the search repairs it."""
    search(tmp_path, num_epochs=3)
    a, b = sorted(records.iter_record_paths(str(tmp_path)))
    shutil.copy(a, b)
    errors = []
    frame = results.load(str(tmp_path), errors=errors)
    assert len(errors) == 1 and b in errors[0] and frame["trial_id"].nunique() == 1
    summary, lines = search(tmp_path, num_epochs=3)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    assert sum("corrupt record moved aside" in line for line in lines) == 1
    assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert results.main([str(tmp_path)]) == 0


def test_a_record_of_another_execution_is_set_aside(tmp_path):
    search(tmp_path, num_epochs=1, executions_per_trial=2)
    path = sorted(records.iter_record_paths(str(tmp_path)))[0]
    other = path.replace("execution_0.json", "execution_1.json")
    shutil.copy(path, other)
    with pytest.raises(records.RecordError, match="execution 0"):
        records.read(other)
    summary, lines = search(tmp_path, num_epochs=1, executions_per_trial=2)
    assert summary["unfinished"] == [] and summary["ran"] == 1


@pytest.mark.parametrize("early_stopping,final", [(False, True), (True, True), (False, False)])
def test_a_completed_record_shorter_than_its_epochs_is_repaired(tmp_path, reference, early_stopping, final):
    """Completed after 1 of 3 epochs, where early stopping (off, or patience 2) could not have ended it: the
    reader names and skips it; the search repairs it from its final state (or runs it again without one)."""
    settings = dict(num_epochs=3, use_early_stopping=early_stopping, early_stopping_patience=2)
    search(tmp_path, **settings)
    path = sorted(records.iter_record_paths(str(tmp_path)))[0]
    data = records.read(path)
    data["history"] = {k: v[:1] for k, v in data["history"].items()}
    with open(path, "w") as f:
        json.dump(data, f)
    if not final:
        os.remove(checkpoints.path_for(path, checkpoints.FINAL_SUFFIX))
    assert "1 of its 3 epochs" in records.inconsistency(records.read(path))
    assert not records.done(records.read(path), 3)
    errors = []
    results.load(str(tmp_path), errors=errors)
    assert len(errors) == 1 and path in errors[0]
    summary, lines = search(tmp_path, **settings)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    assert sum("extending to 3 epochs at epoch 3" in line for line in lines) == int(final), lines
    if not early_stopping:
        assert {k: v["history"] for k, v in found(tmp_path).items()} == reference
    assert records.inconsistency(records.read(path)) is None


def test_a_failed_checkpoint_write_in_a_member_program_retries_only_that_execution(tmp_path, monkeypatch):
    """Disk full while one member's checkpoint is written: that execution is an accident (retried by the
    next run, which ends with the uninterrupted numbers); the program's other member finishes untouched."""
    from bpfree.tuning.options import EngineOptions

    original, failed = checkpoints.save, []

    def full_disk(path, model, epochs_done, history):
        if "lr0.01-" in path and epochs_done == 2 and not failed:
            failed.append(path)
            raise OSError(28, "No space left on device")
        return original(path, model, epochs_done, history)

    monkeypatch.setattr(checkpoints, "save", full_disk)
    engine = EngineOptions(members=2, checkpoint_seconds=0)
    lines = []
    summary = run_search(str(tmp_path), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
                         log=lines.append, engine=engine)
    assert failed
    statuses = {k[0]: v["status"] for k, v in found(tmp_path).items()}
    assert sorted(statuses.values()) == ["completed", "error"], (statuses, lines)
    (untouched,) = [k for k, v in found(tmp_path).items() if v["status"] == "completed"]
    before = found(tmp_path)[untouched]
    monkeypatch.undo()
    summary = run_search(str(tmp_path), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
                         log=lines.append, engine=engine)
    assert summary["unfinished"] == [] and summary["ran"] == 1
    after = found(tmp_path)
    assert after[untouched] == before
    # Without XLA a member's numbers depend on the member count (`options.program_members`): the reference
    # is the same search with the same --members, never interrupted.
    run_search(str(tmp_path / "fresh"), SearchConfig(**{**SETTINGS, "num_epochs": 3}), SearchSpace.create(SPACE),
               log=lines.append, engine=engine)
    assert {k: v["history"] for k, v in after.items()} == {k: v["history"] for k, v in found(tmp_path / "fresh").items()}


def test_a_record_from_an_experiment_with_other_settings_is_set_aside_and_rerun(tmp_path):
    """Issue 26 item 3: a record copied in from another experiment (other search settings) over a finished
    one, where config.json says this experiment runs this search's settings: the record does not belong there,
    so it is moved aside and its execution re-runs (before: the whole experiment was refused on every run).
    Changed flags (config.json differing too) are still refused, naming the change."""
    search(tmp_path / "other", batch_size=32)
    summary, _ = search(tmp_path / "exp")
    expected = {k: v["history"] for k, v in found(tmp_path / "exp").items()}
    theirs = sorted(records.iter_record_paths(str(tmp_path / "other")))[0]
    ours = [p for p in records.iter_record_paths(str(tmp_path / "exp"))
            if os.path.basename(os.path.dirname(p)) == os.path.basename(os.path.dirname(theirs))][0]
    shutil.copyfile(theirs, ours)
    summary, lines = search(tmp_path / "exp")
    assert any("other search settings" in line and "batch_size" in line and "moved aside" in line for line in lines)
    assert summary["unfinished"] == []
    assert {k: v["history"] for k, v in found(tmp_path / "exp").items()} == expected
    assert any(name.startswith("corrupt_") for name in os.listdir(os.path.dirname(ours)))
    with pytest.raises(ValueError, match="batch_size"):  # another flag than the experiment's: still refused
        search(tmp_path / "exp", batch_size=16)
