"""Reconstruction: its error metric (the fraction of variance unexplained) and its sample figure."""

import os

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from bpfree import build_model, metrics, records
from bpfree.metrics import UnexplainedVariance
from bpfree.reconstructions import ReconstructionFigure, reconstruction_figure
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search


def fvu(y, y_hat, w):
    """Σ w ‖ŷ − y‖² / Σ w ‖y − ȳ‖², ȳ the w-weighted mean per feature, in float64."""
    y, y_hat = y.reshape(len(y), -1).astype("float64"), y_hat.reshape(len(y), -1).astype("float64")
    w = w.astype("float64")[:, None]
    mean = (w * y).sum(0) / w.sum()
    return (w * (y_hat - y) ** 2).sum() / (w * (y - mean) ** 2).sum()


@pytest.mark.parametrize("features", [None, 12])
def test_unexplained_variance_pools_batches_as_numpy_does(features):
    rng = np.random.default_rng(0)
    ys = [rng.normal(3.0, 2.0, size=(n, 4, 3)).astype("float32") for n in (5, 1, 7)]  # an offset mean
    y_hats = [y + rng.normal(size=y.shape).astype("float32") for y in ys]
    ws = [rng.uniform(0.0, 2.0, size=len(y)).astype("float32") for y in ys]
    metric = UnexplainedVariance(features)
    for y, y_hat, w in zip(ys, y_hats, ws):
        metric.update_state(y, y_hat, sample_weight=w)
    expected = fvu(np.concatenate(ys), np.concatenate(y_hats), np.concatenate(ws))
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    metric.reset_state()
    metric.update_state(ys[0], ys[0].mean(axis=0, keepdims=True) + 0 * ys[0])  # the mean input: FVU 1
    assert float(metric.result()) == pytest.approx(1.0, rel=1e-5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(again) is UnexplainedVariance and again.get_config() == metric.get_config()
    assert type(metrics.resolve(["unexplained_variance"])[0]) is UnexplainedVariance


@pytest.mark.parametrize("jit_compile", [False, True])
def test_evaluate_reports_the_fvu_of_the_models_reconstructions(jit_compile):
    x = np.random.default_rng(1).uniform(-1.0, 1.0, size=(50, 6)).astype("float32")
    model = build_model("dfa", "4", 6, 6, problem_type="reconstruction", seed=0)
    model.compile(optimizer="adam", metrics=["unexplained_variance"], jit_compile=jit_compile)
    logs = model.evaluate(x, x, batch_size=16, verbose=0, return_dict=True)
    assert logs["unexplained_variance"] == pytest.approx(fvu(x, model.predict(x, verbose=0), np.ones(50)), rel=1e-4)


def test_a_reconstruction_search_logs_unexplained_variance_in_train_validation_and_test(tmp_path):
    space = SearchSpace.create({"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"],
                                "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]})
    config = SearchConfig(dataset="digits", problem_type="reconstruction", objective="val_loss", num_epochs=2)
    found = {}
    for members in (0, 4):  # each execution through its own fit, and as the members of a program
        summary = run_search(str(tmp_path / str(members)), config, space, log=lambda *a: None,
                             engine=engine_for(members))
        for path in records.iter_record_paths(summary["project_dir"]):
            data = records.read(path)
            found[(members, data["trial_id"])] = data
    assert len(found) == 4
    ratios = []
    for data in found.values():
        history = data["history"]
        for key in ("unexplained_variance", "val_unexplained_variance"):
            assert len(history[key]) == 2 and all(0.0 < v < 2.0 for v in history[key]), (key, history)
        assert 0.0 < data["test"]["unexplained_variance"] < 2.0
        # FVU = SSE / SST and the MSE loss = SSE / (N·D): on one validation split their ratio is N·D / SST.
        ratios += [v / loss for v, loss in zip(history["val_unexplained_variance"], history["val_loss"])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)
    for trial in {tid for _, tid in found}:  # grouped executions record what fit records
        grouped, alone = found[(4, trial)]["history"], found[(0, trial)]["history"]
        assert set(grouped) == set(alone)
        for key in alone:
            assert grouped[key] == pytest.approx(alone[key], rel=1e-5), key
    pictures = list(tmp_path.rglob("execution_0/reconstructions.png"))  # one per execution, either path
    assert len(pictures) == 4 and all(p.stat().st_size > 1000 for p in pictures)


def image_data(axes):
    return [ax.get_images()[0].get_array() for ax in axes]


def test_reconstruction_figure_shows_inputs_above_their_reconstructions():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 16.0, size=(3, 64)).astype("float32")
    x_hat = x + rng.normal(size=x.shape).astype("float32")
    fig = reconstruction_figure(x, x_hat, (8, 8, 1))
    axes = np.array(fig.axes).reshape(2, 3)
    low, high = x.min(), x.max()
    for k, (top, bottom) in enumerate(zip(image_data(axes[0]), image_data(axes[1]))):
        np.testing.assert_allclose(top, ((x[k] - low) / (high - low)).reshape(8, 8), rtol=1e-6)
        np.testing.assert_allclose(bottom, np.clip((x_hat[k] - low) / (high - low), 0, 1).reshape(8, 8), rtol=1e-6)
    assert [axes[0, 0].get_ylabel(), axes[1, 0].get_ylabel()] == ["input", "reconstruction"]

    fig = reconstruction_figure(x[:, :40], x_hat[:, :40], (40,))  # vectors (mnist1d): two lines a panel
    lines = fig.axes[1].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), x[1, :40])
    np.testing.assert_allclose(lines[1].get_ydata(), x_hat[1, :40])


def test_the_callback_writes_the_png_and_a_tensorboard_image_when_training_ends(tmp_path):
    x = np.random.default_rng(3).uniform(-1.0, 1.0, size=(32, 64)).astype("float32")
    model = build_model("bp", "16", 64, 64, problem_type="reconstruction", seed=0)
    model.compile(optimizer="adam")
    log_dir = str(tmp_path / "execution_0")
    callback = ReconstructionFigure(log_dir, x[:10], (8, 8, 1), count=4)
    model.fit(x, x, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    with open(os.path.join(log_dir, "reconstructions.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    events = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    (image,) = events.Tensors("reconstructions")
    assert image.step == 2 and len(image.tensor_proto.string_val) == 3  # width, height, the PNG


def engine_for(members):
    """0: each execution through fit; n: programs of up to n members."""
    return EngineOptions(fit=True) if members == 0 else EngineOptions(members=members)
