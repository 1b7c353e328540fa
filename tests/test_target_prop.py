"""GAIT-prop, TP and BP on invertible networks (square and tower), and the seed's optimiser."""

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


@pytest.mark.parametrize("arch", ["16-16-16-16", "16-12-8"])  # square, tower
@pytest.mark.parametrize("activation", ["linear", "lrelu"])
def test_gait_equals_bp_on_orthogonal_networks(activation, arch):
    x, y = data()
    model = build_model("gait", arch, 16, 4, activation=activation, seed=1)
    rule, bp = model.rule_gradients(x, y), model.bp_gradients(x, y)
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
    gamma = model.rule.gamma
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
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert all(history[f"bp_cosine_{l}"][0] >= 0.99 for l in range(1, 5))


@pytest.mark.parametrize("rule,arch", [("gait", "64-64"), ("tp", "64-64"), ("bp_inv", "64-64"), ("gait", "64-32-16")])
def test_rules_lower_the_loss_and_save_and_load(rule, arch, tmp_path):
    from bpfree import datasets

    x, labels = datasets.load("digits")
    x = x.reshape(len(x), -1)
    y = keras.utils.to_categorical(labels, 10).astype("float32")
    model = build_model(rule, arch, 64, 10, activation="lrelu", orthogonal_reg=0.1 if rule == "gait" else 0.0,
                        seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3 if rule == "gait" else 1e-4), metrics=["error_rate"])
    # shuffle=False: fit's shuffle draws from TensorFlow's global seed and op counter (what ran before).
    history = model.fit(x, y, batch_size=60, epochs=5, shuffle=False, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    assert model.predict(x[:3], verbose=0).shape == (3, 10)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="32-16"), "needs an invertible network and arch '32-16'.*square.*tower"),
    (dict(arch="16-8-12"), "needs an invertible network and arch '16-8-12'"),
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
        run_search(str(tmp_path / "bad"), config, SearchSpace.create({**space, "arch": ["128"]}), log=lambda *a: None)


@pytest.mark.parametrize("activation", ["linear", "lrelu"])
def test_tower_layers_invert_with_their_auxiliary_units(activation):
    model = build_model("tp", "16-12-8", 16, 4, activation=activation, orthogonal_init=False, seed=3)
    assert [layer.units for layer in model.inv_layers] == [16, 12, 8, 4]
    x, _ = data()
    hs = model.activities(x)
    for l, layer in enumerate(model.inv_layers):
        assert hs[l + 1].shape[1] == layer.units
        rebuilt = tf.concat([tf.cast(layer.inverse(hs[l + 1]), tf.float32), hs[l][:, layer.units:]], axis=1)
        np.testing.assert_allclose(np.array(rebuilt), np.array(hs[l]), atol=1e-5)


def test_tp_gives_auxiliary_units_zero_error():
    x, y = data()
    model = build_model("tp", "16-12-8", 16, 4, activation="lrelu", seed=3)
    deltas = model.rule.layer_errors(model, model.activities(x), y)
    for l in range(len(deltas) - 1):
        aux = np.array(deltas[l])[:, model.inv_layers[l + 1].units:]
        assert aux.shape[1] > 0 or l == 0
        assert not aux.any()
    assert np.abs(np.array(deltas[-1])).max() > 0


@pytest.mark.parametrize("arch", ["16-16-16", "16-12-8"])
def test_bp_inv_equals_autodiff_on_any_invertible_net(arch):
    x, y = data()
    model = build_model("bp_inv", arch, 16, 4, activation="lrelu", orthogonal_init=False, seed=5)
    for g, b in zip(model.rule_gradients(x, y), model.bp_gradients(x, y)):
        np.testing.assert_allclose(np.array(g), np.array(b), rtol=1e-5, atol=1e-6)


def test_uncorrected_adam_is_the_seeds_update():
    from bpfree.optimizers import UncorrectedAdam

    var = keras.Variable(np.array([1.0, -2.0, 0.5], dtype="float32"))
    opt = UncorrectedAdam(learning_rate=0.01)
    keras_adam = keras.optimizers.Adam(0.01, beta_2=0.99, epsilon=1e-8)
    other = keras.Variable(np.array(var))
    w, m, v = np.array(var, dtype=np.float64), 0.0, 0.0
    for g in ([0.3, -1.0, 2.0], [0.1, 0.5, -1.0], [1.0, 1.0, 1.0]):
        g = np.array(g)
        opt.apply([g.astype("float32")], [var])
        keras_adam.apply([g.astype("float32")], [other])
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        w = w - 0.01 * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(np.array(var), w, rtol=1e-5)
    assert np.abs(np.array(other) - w).max() > 1e-3  # Keras's bias-corrected Adam is another update


def test_rule_hparams_from_the_space_and_the_command_line(tmp_path):
    from bpfree.tuning.space import SearchSpace, SpaceError, trial_id

    space = {"algorithm": ["bp", "gait"], "arch": ["64"], "activation": ["lrelu"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0], "gait": {"orthogonal_reg": [0.1, 1000]}}
    points = SearchSpace.create(space).grid()
    assert [(p["algorithm"], p.get("orthogonal_reg")) for p in points] == [("bp", None), ("gait", 0.1),
                                                                            ("gait", 1000.0)]
    assert "orthogonal_reg0.1" in trial_id(points[1]) and "orthogonal_init" not in trial_id(points[1])
    fixed = SearchSpace.create(space, {"gait.orthogonal_init": "false"}).grid()
    assert all(p["orthogonal_init"] is False for p in fixed if p["algorithm"] == "gait")
    with pytest.raises(SpaceError, match="Invalid gait.orthogonal_reg 'lots'"):
        SearchSpace.create(space, {"gait.orthogonal_reg": "lots"})
    with pytest.raises(SpaceError, match="Unknown hparam.*orthogonal_reg"):
        SearchSpace.create({**space, "ortho_reg": [1.0]})


def test_cli_runs_the_seeds_tower_command_with_rule_hparams_and_its_optimizer(tmp_path):
    import json
    import subprocess
    import sys

    from bpfree import results

    args = [sys.executable, "-m", "bpfree", str(tmp_path), "--dataset", "digits", "--objective", "val_error",
            "--algorithm", "gait", "--arch", "64-32-16", "--activation", "lrelu", "--lr", "1e-4",
            "--rule_hparam", "gait.orthogonal_reg=0.1", "--rule_hparam", "gait.orthogonal_init=true",
            "--optimizer", "uncorrected_adam", "--batch_size", "60", "--num_epochs", "1", "--nobatch_norm",
            "--bw_init", "ortho", "--reg_rate", "0"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    frame = results.load(str(tmp_path))
    assert set(frame["orthogonal_reg"]) == {0.1} and set(frame["status"]) == {"completed"}
    config = json.loads(next(tmp_path.rglob("config.json")).read_text())
    assert config["search"]["optimizer"] == "uncorrected_adam"
    args[3] = str(tmp_path / "bad")
    bad = subprocess.run(args + ["--optimizer", "adamw"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "Unknown optimizer 'adamw'; valid: adam, torch_adam, uncorrected_adam, sgd" in bad.stderr


def readme_commands(prefix):
    import os
    import shlex

    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        text = f.read().replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.startswith(prefix)]


def test_readme_gait_prop_commands_parse_and_the_tower_one_trains_on_mock_mnist(tmp_path, monkeypatch):
    import dataclasses

    import tensorflow_datasets as tfds
    from absl import flags

    from bpfree import results
    from bpfree.tuning import cli, run_search
    from bpfree.tuning.search import validate_points

    commands = readme_commands("./train.bash data/gait_prop")
    assert len(commands) == 5
    resolved = []
    try:
        for command in commands:
            flags.FLAGS.unparse_flags()
            argv = flags.FLAGS(["bpfree"] + command[1:])
            _, config, space = cli.resolve(argv)
            validate_points(space.grid(), config)  # every point is a network the rule can train
            resolved.append((config, space))
    finally:
        flags.FLAGS.unparse_flags()
    assert {p["algorithm"] for _, s in resolved for p in s.grid()} == {"bp_inv", "gait", "tp"}
    assert all(c.optimizer == "uncorrected_adam" and c.batch_size == 60 for c, _ in resolved)
    config, space = resolved[3]
    assert space.grid()[0]["arch"] == "784-500-200"
    monkeypatch.setenv("BPFREE_TFDS_DOWNLOAD", "0")
    with tfds.testing.mock_data(num_examples=120):
        run_search(str(tmp_path), dataclasses.replace(config, num_epochs=1), space, log=lambda *a: None)
    frame = results.load(str(tmp_path))
    assert list(frame["status"]) == ["completed"] and frame["orthogonal_reg"].iloc[0] == 0.1
