"""Training protocols (issue 21): per-epoch learning-rate schedules (`bpfree.schedules`) equal Keras's own
implementations, are applied the same through `fit` and the grouped engine, resume exactly, are logged in
the records, and refuse bad settings in one line; SGD momentum reaches the optimizer."""

import math
import os

import keras
import numpy as np
import pytest

from bpfree import results, schedules
from bpfree.schedule_callback import EpochLearningRate
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning import execution as execution_module
from bpfree.tuning.hypermodel import BpfreeHyperModel
from bpfree.tuning.search import ExperimentMismatch, check_config, project_dir
from search_records import found

SPACE = {"algorithm": ["bp", "fa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-2, 3e-2], "dropout": [0.0]}
SETTINGS = dict(dataset="digits", objective="val_error_rate", use_xla=False)


def quiet(*args):
    pass


# ------------------------------------------------------------------------------------- the math vs Keras
def test_step_schedule_is_keras_piecewise_constant_decay_at_epoch_boundaries():
    lr, milestones, factor = 0.05, (3, 7, 8), 0.2
    # PiecewiseConstantDecay gives values[i] for boundaries[i-1] < step <= boundaries[i]: epoch m takes
    # the reduced rate from milestone m on, so its boundaries are m − 1.
    keras_schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [m - 1 for m in milestones], [lr * factor ** i for i in range(len(milestones) + 1)])
    ours = [schedules.lr_at(e, lr, "step", milestones=milestones, factor=factor) for e in range(12)]
    theirs = [float(keras_schedule(e)) for e in range(12)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours[2] == lr and ours[3] == pytest.approx(lr * factor) and ours[11] == pytest.approx(lr * factor ** 3)


def test_cosine_schedule_is_keras_cosine_decay_at_epoch_boundaries():
    lr, n = 0.1, 10
    keras_schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=n)
    ours = [schedules.lr_at(e, lr, "cosine", num_epochs=n) for e in range(n)]
    np.testing.assert_allclose(ours, [float(keras_schedule(e)) for e in range(n)], rtol=1e-6)
    assert ours[0] == lr and ours[5] == pytest.approx(lr / 2)


def test_plateau_schedule_is_keras_reduce_lr_on_plateau_on_the_same_val_losses():
    val_losses = [1.0, 0.9, 0.95, 0.9, 0.89995, 0.8, 0.8, 0.81, 0.79, 0.7, 0.71, 0.72, 0.73, 0.74, 0.6, 0.61]
    lr, factor, patience = 0.1, 0.5, 2
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    keras_callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=patience)
    keras_callback.set_model(model)
    keras_callback.on_train_begin()
    theirs = []
    for epoch, value in enumerate(val_losses):
        theirs.append(float(model.optimizer.learning_rate))  # the rate epoch `epoch` trains with
        keras_callback.on_epoch_end(epoch, {"val_loss": value})
    ours = [schedules.lr_at(e, lr, "plateau", factor=factor, patience=patience, val_losses=val_losses)
            for e in range(len(val_losses))]
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    assert len(set(theirs)) >= 3  # the sequence makes Keras reduce at least twice


# ------------------------------------------------------------------------------------- searches
def test_a_step_schedule_gives_the_same_records_through_fit_the_engine_and_killed_then_resumed(tmp_path, monkeypatch):
    """biotorch's protocol in small: SGD with momentum (its buffers travel with the member and the checkpoint)
    and a step schedule: the engine's records within float32 rounding of fit's, and bit for bit its own when
    killed and resumed."""
    config = SearchConfig(**SETTINGS, num_epochs=4, lr_schedule="step", lr_milestones=(1, 3), lr_factor=0.5,
                          optimizer="sgd", momentum=0.9)
    space = SearchSpace.create(SPACE)
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(fit=True))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet)  # the default: the grouped engine
    alone, grouped = found(tmp_path / "alone"), found(tmp_path / "grouped")
    assert alone.keys() == grouped.keys() and len(alone) == 4
    for key, record in alone.items():
        assert record["status"] == "completed" == grouped[key]["status"], key
        for metric, values in record["history"].items():
            assert grouped[key]["history"][metric] == pytest.approx(values, rel=1e-5), (key, metric)
        lr = record["hparams"]["lr"]
        np.testing.assert_allclose(record["history"]["learning_rate"], [lr, lr / 2, lr / 2, lr / 4], rtol=1e-6)
        assert record["search"]["lr_milestones"] == [1, 3] and record["search"]["lr_schedule"] == "step"
    frame = results.load(str(tmp_path / "alone"))  # the hparam lr stays a column of its own beside the epoch's rate
    assert sorted(frame["lr"].unique()) == [1e-2, 3e-2]
    np.testing.assert_allclose(frame["learning_rate"] / frame["lr"], np.tile([1, 0.5, 0.5, 0.25], 4), rtol=1e-6)

    original = execution_module.RecordCallback.on_epoch_end

    def interrupted(self, epoch, logs=None):  # killed after epoch 1's checkpoint and record, as kill -9 would
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    every_epoch = EngineOptions(checkpoint_seconds=0)
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(str(tmp_path / "killed"), config, space, log=quiet, engine=every_epoch)
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", original)
    run_search(str(tmp_path / "killed"), config, space, log=quiet, engine=every_epoch)
    killed = found(tmp_path / "killed")
    assert any(d.get("resumed_at_epochs") == [2] for d in killed.values())
    assert {k: d["history"] for k, d in killed.items()} == {k: d["history"] for k, d in grouped.items()}


def test_a_plateau_schedule_resumes_from_the_recorded_val_losses(tmp_path, monkeypatch):
    config = SearchConfig(**SETTINGS, num_epochs=5, lr_schedule="plateau", lr_patience=0, lr_factor=0.5)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [0.3]})
    run_search(str(tmp_path / "once"), config, space, log=quiet)
    (once,) = found(tmp_path / "once").values()
    history = once["history"]
    replayed = [schedules.lr_at(e, 0.3, "plateau", factor=0.5, patience=0, val_losses=history["val_loss"])
                for e in range(5)]
    np.testing.assert_allclose(history["learning_rate"], replayed, rtol=1e-7)
    rates = history["learning_rate"]
    assert rates[0] == pytest.approx(0.3) and rates[3] < 0.3, history  # reduced before the epoch the run resumes at

    original = execution_module.RecordCallback.on_epoch_end

    def interrupted(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 2:
            raise KeyboardInterrupt

    every_epoch = EngineOptions(checkpoint_seconds=0)
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(str(tmp_path / "twice"), config, space, log=quiet, engine=every_epoch)
    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", original)
    run_search(str(tmp_path / "twice"), config, space, log=quiet, engine=every_epoch)
    (twice,) = found(tmp_path / "twice").values()
    assert twice["resumed_at_epochs"] == [3] and twice["history"] == history


def test_a_constant_schedule_logs_no_lr(tmp_path):
    run_search(str(tmp_path), SearchConfig(**SETTINGS, num_epochs=1), SearchSpace.create(
        {**SPACE, "algorithm": ["bp"], "lr": [1e-2]}), log=quiet)
    (record,) = found(tmp_path).values()
    assert "learning_rate" not in record["history"] and record["search"]["lr_schedule"] == "constant"


def test_cosine_refuses_more_epochs_and_step_grows(tmp_path):
    refused = r"num_epochs 1 → 2.*lr_schedule cosine depends on num_epochs"
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    for schedule, extra in (("cosine", {}), ("step", {"lr_milestones": (1,)})):
        before, after = (SearchConfig(**SETTINGS, lr_schedule=schedule, num_epochs=n, **extra) for n in (1, 2))
        run_search(str(tmp_path / schedule), before, space, log=quiet)
        directory = project_dir(str(tmp_path / schedule), after, space)
        if schedule == "cosine":
            with pytest.raises(ExperimentMismatch, match=refused):
                check_config(directory, after, space)
            os.remove(os.path.join(directory, "config.json"))  # the records alone refuse it too
            with pytest.raises(ExperimentMismatch, match=refused):
                check_config(directory, after, space)
        else:
            assert check_config(directory, after, space) == "grown"


# ------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("settings,message", [
    (dict(lr_schedule="cos"), "Unknown lr_schedule 'cos'; valid: constant, step, cosine, plateau."),
    (dict(lr_schedule="step"), "Invalid lr_milestones []: at least one epoch with lr_schedule step"),
    (dict(lr_schedule="step", lr_milestones=(75, 50)), "Invalid lr_milestones [75, 50]: strictly increasing"),
    (dict(lr_schedule="step", lr_milestones=(50, 50)), "Invalid lr_milestones [50, 50]: strictly increasing"),
    (dict(lr_schedule="step", lr_milestones=(0, 5)), "Invalid lr_milestones [0, 5]: strictly increasing epochs ≥ 1"),
    (dict(lr_schedule="step", lr_milestones=(5.5,)), "Invalid lr_milestones (5.5,): a list of epochs"),
    (dict(lr_schedule="cosine", lr_milestones=(5,)), "Invalid lr_milestones [5]: empty with lr_schedule cosine"),
    (dict(lr_schedule="plateau", lr_factor=1.0), "Invalid lr_factor 1.0: a number in (0, 1)."),
    (dict(lr_schedule="plateau", lr_factor=0.0), "Invalid lr_factor 0.0: a number in (0, 1)."),
    (dict(lr_schedule="plateau", lr_patience=-1), "Invalid lr_patience -1: an integer ≥ 0."),
    (dict(momentum=0.9), "Invalid momentum 0.9: 0 with optimizer adam (momentum is SGD's: use optimizer sgd)."),
    (dict(optimizer="sgd", momentum=1.0), "Invalid momentum 1.0: a number in [0, 1)."),
])
def test_bad_protocol_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError) as caught:
        SearchConfig(**settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_refuses_a_bad_schedule_before_training(tmp_path, cli_in_process):
    result = cli_in_process(tmp_path / "x", "--optimizer", "adam", "--momentum", "0.9")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: Invalid momentum 0.9: 0 with optimizer adam (momentum is SGD's: use optimizer sgd)."]
    result = cli_in_process(tmp_path / "x", "--lr_schedule", "step", "--lr_milestones", "50,x")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Invalid --lr_milestones '50,x': epochs, e.g. 50,75."
    assert not (tmp_path / "x").exists()


def test_a_preset_takes_milestones_as_a_list(tmp_path):
    config = SearchConfig.from_settings({"lr_schedule": "step", "lr_milestones": [50, 75], "optimizer": "sgd",
                                         "momentum": 0.9})
    assert config.lr_milestones == (50, 75) and config.to_json()["lr_milestones"] == [50, 75]
    with pytest.raises(ValueError, match=r"\[search\] invalid lr_milestones '50,75': a list of epochs"):
        SearchConfig.from_settings({"lr_schedule": "step", "lr_milestones": "50,75"})


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_momentum_reaches_keras_sgd(momentum):
    import keras_tuner

    config = SearchConfig(**SETTINGS, optimizer="sgd", momentum=momentum)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "lr": [1e-2]})
    model = BpfreeHyperModel(space, config, (64,), 10).build(keras_tuner.HyperParameters(), seed=0)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.momentum == momentum


def test_epoch_learning_rate_sets_the_rate_before_each_epoch_of_fit():
    x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen = []
    watch = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(
        float(model.optimizer.learning_rate)))
    callback = EpochLearningRate(0.1, "cosine", dict, num_epochs=4)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[callback, watch]).history
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6)
    assert callback.get_config()["schedule"] == "cosine"
