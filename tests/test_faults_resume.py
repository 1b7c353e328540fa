"""Faults of issue 26 at the edges of a resume: a kill at an exact point of an execution's end (simulated
in-process: the function after which the kill happens raises KeyboardInterrupt), then the next run of the
search. Each ends with what the search never interrupted would have made.

- An execution whose history already met early stopping (killed after its last checkpoint, or finished at
  the last epoch of a shorter search that is now grown) trains no further epoch.
- Its TensorBoard run holds every epoch's scalars exactly once, whatever epoch the kill cut.
- A completed execution keeps its final state, whichever write of its end the kill cut.
"""

import json
import math
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from bpfree import checkpoints, records
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search, tensorboard_runs
from bpfree.tuning import execution as execution_module
from search_records import found

SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-3, 0.3], "dropout": [0.1]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=1, use_xla=False)
EARLY = dict(num_epochs=6, use_early_stopping=True, early_stopping_patience=1)
ENGINES = {"members": EngineOptions(), "fit": EngineOptions(fit=True)}


def search(directory, engine="members", space=SPACE, **settings):
    lines = []
    summary = run_search(str(directory), SearchConfig(**{**SETTINGS, **settings}), SearchSpace.create(space),
                         log=lines.append, engine=ENGINES[engine] if isinstance(engine, str) else engine)
    return summary, lines


def assert_as_never_interrupted(records_now, reference):
    assert records_now.keys() == reference.keys() and reference
    for key, record in reference.items():
        now = records_now[key]
        assert now["status"] == record["status"] == "completed", key
        assert now["history"] == record["history"], key  # epoch by epoch, bit for bit
        assert len(now["epoch_ends"]) == len(record["epoch_ends"]), key
        assert now["test"] == record["test"] and now["search"] == record["search"], key


@pytest.fixture(scope="module", params=sorted(ENGINES))
def stopped_reference(request, tmp_path_factory):
    """(engine, records of a 6-epoch search with early stopping never interrupted, the epochs its stopped
    execution ran)."""
    directory = tmp_path_factory.mktemp(f"early-{request.param}")
    search(directory, request.param, **EARLY)
    reference = found(directory)
    lengths = sorted(records.epochs_done(d["history"]) for d in reference.values())
    assert lengths[0] < EARLY["num_epochs"] == lengths[-1], "no execution stopped early (or none ran on)"
    return request.param, reference, lengths[0]


# ------------------------------------------------------------------------------------- early stopping
def test_a_resumed_execution_whose_history_met_early_stopping_trains_no_more(tmp_path, monkeypatch, stopped_reference):
    """Killed after the checkpoint of the epoch early stopping ended it on, before its record was completed:
    the next run restores that checkpoint, replays the stopping, and concludes it without an epoch more."""
    engine, reference, stopped_at = stopped_reference
    original = execution_module.RecordCallback.on_train_end

    def killed_after_the_last_checkpoint(self, logs=None):
        original(self, logs)
        if self.execution.record.epochs_done < self.num_epochs:  # the execution that stopped early
            raise KeyboardInterrupt

    monkeypatch.setattr(execution_module.RecordCallback, "on_train_end", killed_after_the_last_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, engine, **EARLY)
    monkeypatch.undo()
    (ckpt,) = [p for p in tmp_path.rglob("*.ckpt.npz") if "lr0.3-" in str(p)]
    assert checkpoints.identity(str(ckpt)) and stopped_at < EARLY["num_epochs"]
    summary, lines = search(tmp_path, engine, **EARLY)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    assert_as_never_interrupted(found(tmp_path), reference)
    assert any("lr0.3-" in line and f"at epoch {stopped_at}" in line and "early stopping" in line for line in lines), lines


def test_an_execution_stopped_at_the_last_epoch_of_a_shorter_search_is_not_extended(tmp_path, stopped_reference):
    """A search of as many epochs as the stopped execution ran (early stopping ended it at its last epoch),
    grown to 6: it is done (it stopped), its record that of the 6-epoch search; the other one is extended."""
    engine, reference, stopped_at = stopped_reference
    search(tmp_path, engine, **{**EARLY, "num_epochs": stopped_at})
    summary, lines = search(tmp_path, engine, **EARLY)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    grown = found(tmp_path)
    assert_as_never_interrupted(grown, reference)
    assert not any("lr0.3-" in line and "extending" in line for line in lines), lines
    assert sum("lr0.001-" in line and f"extending to 6 epochs at epoch {stopped_at}" in line for line in lines) == 1
    assert not any(d.get("extended_at_epochs") for k, d in grown.items() if "lr0.3-" in k[0])
    assert len(list(tmp_path.rglob("*.final.npz"))) == 2 and not list(tmp_path.rglob("*.ckpt.npz"))


# ------------------------------------------------------------------------------------- TensorBoard
def scalar_steps(run_dir):
    """{tag: [(step, value), ...]} of every scalar in the event files of `run_dir`, in the order read."""
    out = {}
    for name in sorted(os.listdir(run_dir)):
        if "tfevents" not in name or name.startswith("."):
            continue
        for event in event_file_loader.LegacyEventFileLoader(os.path.join(run_dir, name)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, []).append((event.step, float(tensor_util.make_ndarray(value.tensor))))
    return out


def expected_scalars(history):
    """What the run must show: each finite value of the record's history, once, at its epoch."""
    out = {}
    for name, values in history.items():
        for step, v in enumerate(values):
            if v is not None and math.isfinite(v):
                out.setdefault(tensorboard_runs.tag(name), []).append((step, float(np.float32(v))))
    return out


@pytest.mark.parametrize("kill", ["between the checkpoint and the record", "between the record and the scalars",
                                  "after the scalars, checkpoint older"])
def test_a_resumed_run_has_every_epochs_scalars_exactly_once(tmp_path, monkeypatch, kill):
    """Epoch 1's checkpoint (and record) written, the kill before its scalars: they are written from the
    record on resume. Or the kill after epoch 2's scalars, the last checkpoint after epoch 0: epochs 1 and 2,
    replayed, are not shown twice."""
    space = {**SPACE, "lr": [1e-2]}
    engine = EngineOptions(checkpoint_seconds=0)  # a checkpoint at every epoch's end (save filters them below)
    if kill == "between the checkpoint and the record":
        save, at = checkpoints.save, 1

        def killed_after_saving(path, model, done, history):
            save(path, model, done, history)
            if done == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(checkpoints, "save", killed_after_saving)
        cls, original = None, None
    elif kill == "between the record and the scalars":
        original, at = execution_module.RecordCallback.on_epoch_end, 1
        cls = execution_module.RecordCallback
    else:
        original, at = tensorboard_runs.EpochScalars.on_epoch_end, 2
        cls = tensorboard_runs.EpochScalars
        save = checkpoints.save
        monkeypatch.setattr(checkpoints, "save", lambda path, model, done, history:
                            save(path, model, done, history) if done == 1 else None)

    def killed(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == at:
            raise KeyboardInterrupt

    if cls is not None:
        monkeypatch.setattr(cls, "on_epoch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, engine, space=space, num_epochs=4)
    monkeypatch.undo()
    (run_dir,) = [p for p in tmp_path.rglob("execution_0") if p.is_dir() and p.parent.parent.name == "tensorboard"]
    shown = scalar_steps(run_dir)
    assert len(shown["loss/train"]) == (1 if at == 1 else 3), shown  # what the kill left
    summary, lines = search(tmp_path, engine, space=space, num_epochs=4)
    assert summary["unfinished"] == [] and any("resuming at epoch" in line for line in lines), lines
    (record,) = found(tmp_path).values()
    assert records.epochs_done(record["history"]) == 4
    shown = scalar_steps(run_dir)
    assert len(shown.pop("seed")) == 1  # the run's hparams, not an epoch's
    assert shown == expected_scalars(record["history"])


def test_scalar_files_written_before_they_were_named_so_are_rewritten_too(tmp_path):
    """A run resumed from a search begun before the epoch-scalar files had their suffix: its old scalar file
    (no suffix) is replaced by the record's epochs; its hparams file and histograms are kept."""
    from bpfree.tuning import tensorboard_hparams

    run_dir = tmp_path / "tensorboard" / "t" / "execution_0"
    old = tensorboard_runs.EventFile(str(run_dir))
    for epoch, loss in enumerate([3.0, 2.0, 1.5]):  # epoch 2: after the checkpoint the run resumes from
        old.write(tensorboard_runs.scalars({"loss": loss, "val_loss": loss + 1}), epoch)
    old.close()
    point = {"algorithm": "bp", "lr": 0.01}
    tensorboard_hparams.write_run(str(run_dir), point, 0, 7, {})
    (run_dir / "events.out.tfevents.1.host.1.2.v2").write_bytes(b"")  # tf.summary's (histograms): not ours
    callback = tensorboard_runs.EpochScalars(str(run_dir), {"loss": [3.0, 2.0], "val_loss": [4.0, 3.0]}, [1e9, 2e9])
    callback.on_train_begin()
    callback.on_epoch_end(2, {"loss": 1.25, "val_loss": 2.25})
    callback.on_train_end()
    shown = scalar_steps(run_dir)
    assert shown.pop("seed") == [(0, 7.0)]
    assert shown == {"loss/train": [(0, 3.0), (1, 2.0), (2, 1.25)], "loss/validation": [(0, 4.0), (1, 3.0), (2, 2.25)]}
    assert (run_dir / "events.out.tfevents.1.host.1.2.v2").exists()
    assert sum(name.endswith(tensorboard_runs.SCALARS_SUFFIX) for name in os.listdir(run_dir)) == 1


# ------------------------------------------------------------------------------------- final state
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_around_keeping_the_final_state_leaves_one_to_extend(tmp_path, monkeypatch, when):
    """Killed just before, or just after, the last checkpoint becomes the final state: the next run of the
    search ends with every execution completed beside its final state (no checkpoint), and a search grown
    to more epochs extends them from there, to the numbers of a search that ran them at once."""
    original = checkpoints.keep_as_final

    def killed(path):
        if when == "after":
            original(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "keep_as_final", killed)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "grown", num_epochs=2)
    monkeypatch.undo()
    summary, _ = search(tmp_path / "grown", num_epochs=2)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    assert {d["status"] for d in found(tmp_path / "grown").values()} == {"completed"}
    assert len(list((tmp_path / "grown").rglob("*.final.npz"))) == 2
    assert not list((tmp_path / "grown").rglob("*.ckpt.npz"))
    _, lines = search(tmp_path / "grown", num_epochs=3)
    assert sum("extending to 3 epochs at epoch 2" in line for line in lines) == 2, lines
    search(tmp_path / "fresh", num_epochs=3)
    assert_as_never_interrupted(found(tmp_path / "grown"), found(tmp_path / "fresh"))


def test_a_completed_record_beside_its_last_checkpoint_is_extended_from_it(tmp_path):
    """The state a kill between the record and the rename left (before the final state was kept first): a
    completed record, its last checkpoint, no final state. A search grown to more epochs keeps that checkpoint
    as the final state and extends it; one that does not hold the record's last epoch is not taken for it
    (its execution runs again whole)."""
    search(tmp_path / "grown", num_epochs=2)
    finals = sorted((tmp_path / "grown").rglob("*.final.npz"))
    assert len(finals) == 2
    ckpts = [str(final)[: -len(checkpoints.FINAL_SUFFIX)] + checkpoints.SUFFIX for final in finals]
    for final, ckpt in zip(finals, ckpts):
        os.replace(final, ckpt)
    with np.load(ckpts[1], allow_pickle=False) as data:  # the second: a checkpoint of its first epoch
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["epochs_done"], meta["history"] = 1, {k: v[:1] for k, v in meta["history"].items()}
    arrays["meta"] = np.array(json.dumps(meta))
    with open(ckpts[1], "wb") as f:
        np.savez(f, **arrays)
    summary, lines = search(tmp_path / "grown", num_epochs=3)
    assert summary["unfinished"] == [] and summary["accidents"] == []
    (kept,) = [line for line in lines if "kept as its final state" in line]
    assert finals[0].parent.name in kept
    extended = [line for line in lines if "extending to 3 epochs at epoch 2" in line]
    assert len(extended) == 1 and finals[0].parent.name in extended[0], lines
    search(tmp_path / "fresh", num_epochs=3)
    assert_as_never_interrupted(found(tmp_path / "grown"), found(tmp_path / "fresh"))
    assert len(list((tmp_path / "grown").rglob("*.final.npz"))) == 2 and not list((tmp_path / "grown").rglob("*.ckpt.npz"))


@pytest.mark.parametrize("values", [[1.0, math.nan, math.nan, 0.5], [math.nan, 2.0, 1.0, 1.5, 1.2], [1.0, 0.5, math.nan]])
def test_early_stopping_replays_a_value_that_was_not_finite_as_the_live_run_counted_it(values):
    """The record keeps a NaN objective as None. The live run counted that epoch as one without improvement (Keras's
    comparison with NaN is false); the replay skipped it, so a resumed run's patience restarted and it trained
    longer than the uninterrupted one. Every prefix's decision is now the live run's."""
    import keras

    from bpfree.tuning.early_stopping import ResumableEarlyStopping, stopped

    class Model:
        stop_training = False

    live = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, mode="min")
    live.set_model(Model())
    live.on_train_begin()
    for epoch, value in enumerate(values):
        live.on_epoch_end(epoch, {"val_loss": value})
        recorded = [None if math.isnan(v) else v for v in values[:epoch + 1]]
        assert stopped({"val_loss": recorded}, "val_loss", 2) == live.model.stop_training, (epoch, recorded)
        replay = ResumableEarlyStopping("val_loss", 2, past=recorded)
        replay.set_model(Model())
        replay.on_train_begin()
        assert (replay.wait, replay.model.stop_training) == (live.wait, live.model.stop_training), epoch
