"""Network behaviour: learning, feedback matrices, save/load, trackers, XLA, bad input."""

import logging
import math

import keras
import numpy as np
import pytest

from bpfree import build_model
from bpfree.trackers import TRACKERS

RULES = ("bp", "fa", "dfa", "drtp", "cce", "mse")


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_lowers_training_loss(rule, toy_classification):
    x, y = toy_classification
    model = build_model(rule, "32-32", 12, 3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["error_rate"], jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    assert history["error_rate"][-1] < 45.0  # chance is 66.7 %


@pytest.mark.parametrize("rule", ["bp", "fa", "dfa", "cce", "mse"])
def test_reconstruction_lowers_loss(rule):
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=(256, 4)) @ rng.normal(size=(4, 16))).astype("float32")  # low-rank data
    model = build_model(rule, "24-8-24", 16, 16, problem_type="reconstruction", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, x, batch_size=32, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.75 * history["loss"][0], history["loss"]


def test_cce_on_reconstruction_uses_mse_local_loss():
    model = build_model("cce", "8", 6, 6, problem_type="reconstruction", seed=0)
    assert model.rule.local_loss_kind(model.network_config) == "mse"
    cce = build_model("cce", "8", 6, 3, seed=0)
    assert cce.rule.local_loss_kind(cce.network_config) == "cce"


@pytest.mark.parametrize("rule,count,shapes", [
    ("bp", 0, []),
    ("fa", 2, [(9, 7), (7, 3)]),
    ("dfa", 2, [(9, 3), (7, 3)]),
    ("drtp", 2, [(9, 3), (7, 3)]),
    ("cce", 2, [(9, 3), (7, 3)]),
    ("mse", 2, [(9, 3), (7, 3)]),
])
def test_feedback_matrices_fixed_and_saved(rule, count, shapes, toy_classification, tmp_path):
    x, y = toy_classification
    model = build_model(rule, "9-7", 12, 3, seed=5, dropout=0.1, batchnorm=True)
    assert [tuple(b.shape) for b in model.feedback_matrices] == shapes
    assert len(model.weighted_layers) == 3
    before = [np.array(b) for b in model.feedback_matrices]
    model.compile(optimizer="adam", metrics=["error_rate"])
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    for b0, b in zip(before, model.feedback_matrices):
        np.testing.assert_array_equal(b0, np.array(b))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.rule.name == rule
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for b0, b in zip(before, loaded.feedback_matrices):
        np.testing.assert_array_equal(b0, np.array(b))
    # The loaded model keeps training with its rule.
    loaded.fit(x, y, batch_size=64, epochs=1, verbose=0)


def test_same_seed_same_model_different_seed_different():
    a, b, c = (build_model("dfa", "6", 4, 2, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(np.array(a.feedback_matrices[0]), np.array(b.feedback_matrices[0]))
    np.testing.assert_array_equal(np.array(a.weighted_layers[0].kernel), np.array(b.weighted_layers[0].kernel))
    assert not np.allclose(np.array(a.feedback_matrices[0]), np.array(c.feedback_matrices[0]))


@pytest.mark.parametrize("bw_init", ["ortho", "lecun", "uniform", "gaussian", "xavier"])
def test_bw_inits(bw_init):
    model = build_model("dfa", "40", 10, 8, bw_init=bw_init, seed=0)
    b = np.array(model.feedback_matrices[0])
    assert b.shape == (40, 8) and np.isfinite(b).all() and b.std() > 0
    if bw_init == "ortho":
        np.testing.assert_allclose(b.T @ b, np.eye(8), atol=1e-5)


def test_xavier_feedback_is_glorot_uniform_with_the_matrix_own_fans_and_reproducible():
    """bw_init xavier: B ~ U(±√(6/(fan_in + fan_out))), variance bound²/3; a conv B (k, k, C_in, C_out) counts
    k²·C_in and k²·C_out (as PyTorch's xavier_uniform_); the same seed draws the same B."""
    a, b, c = (build_model("fa", "conv16k3-conv32k3-64", (8, 8, 4), 10, bw_init="xavier", seed=s) for s in (3, 3, 4))
    conv_b, dense_b = np.array(a.feedback_matrices[0]), np.array(a.feedback_matrices[2])
    assert conv_b.shape == (3, 3, 16, 32) and dense_b.shape == (64, 10)
    for matrix, (fan_in, fan_out) in ((conv_b, (9 * 16, 9 * 32)), (dense_b, (64, 10))):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert np.abs(matrix).max() <= bound and np.abs(matrix).max() > 0.95 * bound
        assert matrix.var() == pytest.approx(bound**2 / 3, rel=0.1)
    np.testing.assert_array_equal(conv_b, np.array(b.feedback_matrices[0]))
    assert not np.allclose(conv_b, np.array(c.feedback_matrices[0]))
    projection = np.array(build_model("dfa", "300", 20, 10, bw_init="xavier", seed=0).feedback_matrices[0])
    bound = math.sqrt(6 / (300 + 10))
    assert projection.shape == (300, 10) and bound * 0.95 < np.abs(projection).max() <= bound


@pytest.mark.parametrize("rule", RULES)
def test_trackers_finite_and_counted(rule, toy_classification):
    x, y = toy_classification
    model = build_model(rule, "10-8", 12, 3, trackers=TRACKERS, seed=0)
    model.compile(optimizer="sgd", jit_compile=True)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_data=(x, y)).history
    L = 2
    direct = rule in ("dfa", "drtp", "cce", "mse")
    expected = {
        "bp_cosine": L,
        "local_loss": L if direct else 0,
        "weight_norm": L + 1,
        "bias_norm": L + 1,
        "update_norm": L + 1,
        "weight_alignment": 0 if rule == "bp" else L,
    }
    for prefix, count in expected.items():
        keys = [k for k in history if k.startswith(prefix + "_")]
        assert len(keys) == count, (prefix, keys)
        assert all(np.isfinite(history[k]).all() for k in keys)
        assert not any(f"val_{k}" in history for k in keys)
    if rule == "bp":
        for l in (1, 2):
            assert history[f"bp_cosine_{l}"][0] == pytest.approx(1.0, abs=1e-5)


def test_bp_cosine_is_one_for_bp_with_dropout_and_batchnorm(toy_classification):
    # The true-gradient pass replays the rule pass's dropout masks and batch statistics.
    x, y = toy_classification
    model = build_model("bp", "16-16", 12, 3, dropout=0.3, batchnorm=True, trackers=["bp_cosine"], seed=0)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert history["bp_cosine_1"][0] == pytest.approx(1.0, abs=1e-5)
    assert history["bp_cosine_2"][0] == pytest.approx(1.0, abs=1e-5)


def test_bp_cosine_below_one_for_dfa_and_rising_alignment(toy_classification):
    x, y = toy_classification
    model = build_model("dfa", "32", 12, 3, trackers=["bp_cosine", "weight_alignment"], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    assert history["bp_cosine_1"][0] < 0.999
    assert history["weight_alignment_2"][-1] > history["weight_alignment_2"][0]


@pytest.mark.parametrize("rule", ["dfa", "fa"])
def test_init_fw_weight_aligned(rule, toy_classification):
    model = build_model(rule, "10-8", 12, 3, init_fw_weight_aligned=True, trackers=["weight_alignment"], seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e-6))
    x, y = toy_classification
    history = model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0).history
    for l in (2, 3):
        assert history[f"weight_alignment_{l}"][0] == pytest.approx(1.0, abs=1e-4)


def test_no_tracker_no_extra_metrics(toy_classification):
    x, y = toy_classification
    model = build_model("dfa", "8", 12, 3, seed=0)
    model.compile(optimizer="sgd", metrics=["error_rate"])
    assert set(model.fit(x, y, epochs=1, verbose=0).history) == {"loss", "error_rate"}


def test_activation_histograms_written(tmp_path, toy_classification):
    from bpfree.trackers import ActivationHistograms

    x, y = toy_classification
    model = build_model("dfa", "8-8", 12, 3, seed=0)
    model.compile(optimizer="sgd")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ActivationHistograms(str(tmp_path), x[:32], 1)])
    events = list((tmp_path / "train").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(algorithm="sgd"), "Unknown algorithm 'sgd'; valid: bp, fa, dfa, drtp, cce, mse"),
    (dict(activation="gelu"), "valid: tanh, relu, lrelu, swish, sigmoid, linear"),
    (dict(bw_init="kaiming"), "valid: ortho, lecun, uniform, gaussian, xavier"),
    (dict(arch="500-abc"), "Invalid arch '500-abc'"),
    (dict(arch="500--500"), "Invalid arch"),
    (dict(arch="0"), "Invalid arch"),
    (dict(algorithm="drtp", problem_type="reconstruction", output_dim=12), "valid: 'classification'"),
    (dict(problem_type="regression"), "valid: classification, reconstruction"),
    (dict(trackers=["angles"]), "valid: bp_cosine, local_loss, weights, gradients, weight_alignment"),
    (dict(dropout=1.5), "Invalid dropout"),
    (dict(algorithm="bp", init_fw_weight_aligned=True), "has no feedback matrices|needs feedback"),
])
def test_bad_input_raises_value_error_naming_valid_choices(kwargs, match):
    args = dict(algorithm="dfa", arch="8", input_dim=12, output_dim=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("algorithm"), args.pop("arch"), args.pop("input_dim"), args.pop("output_dim"), **args)


def test_drtp_with_unbounded_activation_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="bpfree"):
        build_model("drtp", "8", 12, 3, activation="relu")
    assert "drtp" in caplog.text and "relu" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bpfree"):
        build_model("drtp", "8", 12, 3, activation="tanh")
    assert caplog.text == ""


@pytest.mark.parametrize("rule", RULES)
def test_options_combinations_train(rule, toy_classification):
    x, y = toy_classification
    model = build_model(rule, "16-16", 12, 3, activation="swish" if rule != "drtp" else "sigmoid",
                        batchnorm=True, dropout=0.2, use_bias=False, weight_decay=1e-4, bw_init="lecun", seed=0)
    model.compile(optimizer="adam", metrics=["error_rate"], jit_compile=True)
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert all(layer.bias is None for layer in model.weighted_layers)
