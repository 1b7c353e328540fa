"""GAIT-prop and TP on square invertible networks (issue 5, first part: exact-inverse rules)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import build_model
from bpfree.layers.invertible import InvertibleDense


def data(n=16, d=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % classes, classes).astype("float32")
    return x, y


@pytest.mark.parametrize("linear", [False, True])
@pytest.mark.parametrize("orthogonal", [False, True])
def test_inverse_recovers_the_input(linear, orthogonal):
    layer = InvertibleDense(linear=linear, orthogonal_init=orthogonal, seed=10)
    layer.build((None, 12))
    layer.bias.assign(np.linspace(-0.5, 0.5, 12).astype("float32"))
    assert np.linalg.cond(np.array(layer.kernel)) < 30  # float32 forward: error grows with the condition number
    h = np.random.default_rng(1).normal(size=(20, 12)).astype("float32")
    np.testing.assert_allclose(np.array(layer.inverse(layer(h))), h, atol=1e-5)


@pytest.mark.parametrize("activation", ["linear", "lrelu"])
def test_gait_equals_bp_on_orthogonal_networks(activation):
    x, y = data()
    model = build_model("gait", "16-16-16-16", 16, 4, activation=activation, seed=1)
    rule, bp = model.rule_gradients(x, y)[0], model.bp_gradients(x, y)
    for g, b in zip(rule, bp):
        g, b = np.ravel(g), np.ravel(b)
        assert g @ b / (np.linalg.norm(g) * np.linalg.norm(b)) >= 0.999
        assert np.linalg.norm(g) == pytest.approx(np.linalg.norm(b), rel=0.01)


def test_naive_float32_targets_cancel_but_ours_do_not():
    # Forming τ_{l−1} = g(h + γD²(τ − h)) and subtracting h in float32 loses the 4-layer-deep error.
    x, y = data()
    model = build_model("gait", "16-16-16-16", 16, 4, activation="linear", seed=1)
    hs = model.activities(x)
    tau = model.output_target(hs[-1], y)
    gamma = model.gamma
    for l in reversed(range(1, len(model.inv_layers))):
        layer = model.inv_layers[l]
        tau = tf.cast(layer.inverse(hs[l + 1] + gamma * (tau - hs[l + 1]), dtype="float32"), tf.float32)
    naive = np.array((hs[1] - tau) / gamma ** 4, dtype=np.float64)  # δ_1 = m (h_1 − τ_1), m = γ^−4
    ours = np.array(model.rule.layer_errors(model, hs, y)[0])
    bp = np.array(model.bp_gradients(x, y)[0], dtype=np.float64)  # ∂L/∂W_1 = xᵀ δ_1 / N
    delta_bp = np.linalg.solve(np.array(x, dtype=np.float64).T, bp * len(x))
    np.testing.assert_allclose(ours, delta_bp, atol=1e-4 * np.abs(delta_bp).max())
    assert np.abs(naive - delta_bp).max() > 100 * np.abs(ours - delta_bp).max()


def test_bp_cosine_tracker_at_init_on_leaky_relu_orthogonal_nets():
    x, y = data(n=32)
    model = build_model("gait", "16-16-16", 16, 4, activation="lrelu", trackers=["bp_cosine"], seed=2)
    model.compile(optimizer=keras.optimizers.SGD(1e-6))
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert all(history[f"bp_cosine_{l}"][0] >= 0.99 for l in range(1, 5))


@pytest.mark.parametrize("rule", ["gait", "tp"])
def test_rules_lower_the_loss_and_save_and_load(rule, tmp_path):
    from bpfree import datasets

    x, labels = datasets.load("digits")
    x = x.reshape(len(x), -1)
    y = keras.utils.to_categorical(labels, 10).astype("float32")
    model = build_model(rule, "64-64", 64, 10, activation="lrelu", orthogonal_reg=0.1 if rule == "gait" else 0.0,
                        seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3 if rule == "gait" else 1e-4), metrics=["error_rate"])
    history = model.fit(x, y, batch_size=60, epochs=5, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    assert model.predict(x[:3], verbose=0).shape == (3, 10)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="32-16"), "needs an invertible \\(square\\) network"),
    (dict(activation="tanh"), "valid: lrelu, linear"),
    (dict(dropout=0.2), "does not support dropout"),
])
def test_non_invertible_setups_are_refused(kwargs, match):
    args = dict(arch="16-16", activation="lrelu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model("gait", args.pop("arch"), 16, 4, **args)


def test_gait_runs_in_a_tiny_grid_next_to_bp(tmp_path):
    from bpfree import results
    from bpfree.tuning import SearchConfig, SearchSpace, run_search

    space = {"algorithm": ["bp", "gait"], "arch": ["64"], "activation": ["lrelu"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=2)
    run_search(str(tmp_path), config, SearchSpace.create(space), log=lambda *a: None)
    frame = results.load(str(tmp_path))
    assert set(frame["algorithm"]) == {"bp", "gait"} and set(frame["status"]) == {"completed"}
    assert "orthogonal_reg" in frame  # the rule's own hparams are recorded
    with pytest.raises(ValueError, match="needs an invertible"):
        run_search(str(tmp_path / "bad"), config, SearchSpace.create({**space, "arch": ["32"]}), log=lambda *a: None)
