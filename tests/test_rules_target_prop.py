"""The target-propagation family. On invertible networks (square and tower): GAIT-prop, TP and BP through
the inverse (gait, tp, bp_inv), and the seed's optimiser. On ordinary feedforward networks with learned or
computed inverses: dtp, tp_lsq and tp_rinv — targets against numpy (float64), the difference correction,
the inverses' training, learning, save/load, a grid next to bp, bad input.

eager/graph/XLA equality: test_compile_modes.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import build_model
from bpfree.layers.invertible import InvertibleDense
from bpfree.rules import tp_inverse

LEARNED = ("dtp", "tp_lsq", "tp_rinv")  # the rules with learned or computed inverses
N = 8


# ==================================================================================== invertible networks
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


# ==================================================================================== learned inverses
# ------------------------------------------------------------------------------------ numpy references
def np_act(name, a):
    return {"tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0),
            "lrelu": lambda v: np.where(v > 0, v, 0.2 * v), "linear": lambda v: v}[name](a)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def weights(model):
    Ws = [np.array(l.kernel, np.float64) for l in model.weighted_layers]
    bs = [np.array(l.bias, np.float64) if l.bias is not None else np.zeros(l.units) for l in model.weighted_layers]
    return Ws, bs


def np_forward(model, x):
    """([h_0..h_L], [a_1..a_L], z) in float64."""
    Ws, bs = weights(model)
    act = model.network_config.activation
    hs, As = [x.astype(np.float64)], []
    for W, b in zip(Ws[:-1], bs[:-1]):
        As.append(hs[-1] @ W + b)
        hs.append(np_act(act, As[-1]))
    return hs, As, hs[-1] @ Ws[-1] + bs[-1]


def np_top_target(z, y, alpha):
    return z - alpha * (softmax(z) - y)  # z − α N ∂(mean CE)/∂z


def np_act_inv(name, t, a):
    if name == "tanh":
        return np.arctanh(np.clip(t, -0.99, 0.99))
    if name == "sigmoid":
        t = np.clip(t, 0.01, 0.99)
        return np.log(t / (1 - t))
    if name == "relu":
        return np.where(t > 0, t, np.where(a >= 0, 0.0, a))
    if name == "lrelu":
        return np.where(t > 0, t, t / 0.2)
    return t


def np_rinv_act(name, y, x0, gamma, steps, lr):
    if name == "linear":
        return (y + gamma * x0) / (1 + gamma)
    if name in ("relu", "lrelu"):
        s = 0.2 if name == "lrelu" else 0.0
        cands = [np.maximum((y + gamma * x0) / (1 + gamma), 0), np.minimum((s * y + gamma * x0) / (s * s + gamma), 0)]
        costs = [(np_act(name, c) - y) ** 2 + gamma * (c - x0) ** 2 for c in cands]
        return np.where(costs[0] <= costs[1], cands[0], cands[1])
    x = np_act_inv(name, y, x0)
    for _ in range(steps):
        f = np_act(name, x)
        fp = 1 - f**2 if name == "tanh" else f * (1 - f)
        x = x - lr * (2 * (f - y) * fp + 2 * gamma * (x - x0))
    return x


def np_targets(model, x, y):
    """[t_1..t_L, t_z] of the model's rule, from the equations in float64."""
    c = model.network_config
    hs, As, z = np_forward(model, x)
    Ws, bs = weights(model)
    t = np_top_target(z, y, model.rule.alpha_t)
    targets = [t]
    L = len(c.arch)
    for l in range(L + 1, 1, -1):  # layer l (1-based): input h_{l−1}, kernel Ws[l−1]
        W, b, x0 = Ws[l - 1], bs[l - 1], hs[l - 1]
        if c.algorithm == "dtp":
            inv = model.rule_layers[l - 2]
            V, cc = np.array(inv.kernel, np.float64), np.array(inv.bias, np.float64)
            out = hs[l] if l <= L else z
            t = x0 + np_act(c.activation, t @ V + cc) - np_act(c.activation, out @ V + cc)
        elif c.algorithm == "tp_lsq":
            if l <= L:
                t = np_act_inv(c.activation, t, As[l - 1])
            t = x0 + ((t - b) - x0 @ W) @ np.linalg.pinv(W)
        else:
            g = model.rule.gamma
            if l <= L:
                t = np_rinv_act(c.activation, t, As[l - 1], g, model.rule.num_steps_rinv, model.rule.lr_rinv)
            t = (t - b + g * (x0 @ W)) / (1 + g)
            t = np.linalg.solve(W @ W.T + g * np.eye(len(W)), (t @ W.T + g * x0).T).T
        targets.insert(0, t)
    return targets


def feedforward_data(n=N, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, classes, n), classes).astype("float32")
    return x, y


def model_targets(model, x, y):
    if not model.compiled:
        model.compile(optimizer=keras.optimizers.SGD(1.0))  # the default loss: CE on softmax
    forward = model.forward_pass(x, y, training=False)
    return [np.array(t, np.float64) for t in model.rule.targets(forward)]


def randomise_biases(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in model.weighted_layers + list(model.rule_layers):
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.2, size=layer.bias.shape).astype("float32"))


# ------------------------------------------------------------------------------------ targets
@pytest.mark.parametrize("rule,activation", [
    ("dtp", "tanh"), ("dtp", "relu"),
    ("tp_lsq", "tanh"), ("tp_lsq", "sigmoid"), ("tp_lsq", "relu"), ("tp_lsq", "lrelu"), ("tp_lsq", "linear"),
    ("tp_rinv", "tanh"), ("tp_rinv", "sigmoid"), ("tp_rinv", "relu"), ("tp_rinv", "lrelu"), ("tp_rinv", "linear"),
])
def test_targets_match_the_equations(rule, activation):
    # Widths that grow and shrink: over- and under-determined least-squares steps.
    x, y = feedforward_data()
    extra = {"gamma": 0.05, "num_steps_rinv": 3, "lr_rinv": 0.3} if rule == "tp_rinv" else {}
    model = build_model(rule, "9-5-7", 6, 3, activation=activation, alpha_t=0.7, seed=4, **extra)
    randomise_biases(model)
    got, want = model_targets(model, x, y), np_targets(model, x, y)
    assert len(got) == 4
    for l, (g, w) in enumerate(zip(got, want), start=1):
        hs, _, z = np_forward(model, x)
        activity = hs[l] if l < 4 else z
        assert np.abs(w - activity).max() > 1e-3, f"layer {l}: a target equal to the activity tests nothing"
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(w).max()), err_msg=f"target {l}")


@pytest.mark.parametrize("shape", [(7, 4), (4, 7)])
def test_lsq_step_is_the_minimum_change_least_squares_solution(shape):
    rng = np.random.default_rng(3)
    W, x0, y = rng.normal(size=shape), rng.normal(size=(5, shape[0])), rng.normal(size=(5, shape[1]))
    x = np.array(tp_inverse.lsq_linear_inverse(tf.constant(y), tf.constant(x0), tf.constant(W)))
    # Normal equations of min ‖x W − y‖: (x W − y) Wᵀ = 0.
    np.testing.assert_allclose((x @ W - y) @ W.T, 0, atol=1e-9)
    # Least change from x0: the same as numpy's minimum-norm lstsq on (y − x0 W), and x − x0 ⟂ {v : v W = 0}.
    delta = np.linalg.lstsq(W.T, (y - x0 @ W).T, rcond=None)[0].T
    np.testing.assert_allclose(x, x0 + delta, atol=1e-9)
    np.testing.assert_allclose(x, x0 + (y - x0 @ W) @ np.linalg.pinv(W), atol=1e-9)
    u, s, vt = np.linalg.svd(W.T)
    null = vt[(s > 1e-10).sum():]  # rows span {v : v W = 0}
    np.testing.assert_allclose((x - x0) @ null.T, 0, atol=1e-9)


def test_rinv_linear_and_bias_steps_are_the_regularised_argmin():
    rng = np.random.default_rng(5)
    W, x0, y, gamma = rng.normal(size=(6, 4)), rng.normal(size=(5, 6)), rng.normal(size=(5, 4)), 0.3
    x = np.array(tp_inverse.rinv_linear(tf.constant(y), tf.constant(x0), tf.constant(W), gamma))
    np.testing.assert_allclose(x, (y @ W.T + gamma * x0) @ np.linalg.inv(W @ W.T + gamma * np.eye(6)), atol=1e-9)
    np.testing.assert_allclose(2 * (x @ W - y) @ W.T + 2 * gamma * (x - x0), 0, atol=1e-9)  # ∇ = 0
    b = rng.normal(size=4)
    x0b = rng.normal(size=(5, 4))
    xb = np.array(tp_inverse.rinv_bias(tf.constant(y), tf.constant(b), tf.constant(x0b), gamma))
    np.testing.assert_allclose(2 * (xb + b - y) + 2 * gamma * (xb - x0b), 0, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "lrelu", "linear"])
def test_rinv_closed_forms_are_the_global_minimum(activation):
    rng = np.random.default_rng(6)
    y, x0, gamma = rng.normal(size=200) * 2, rng.normal(size=200) * 2, 0.1
    x = np.array(tp_inverse.rinv_activation(tf.constant(y), tf.constant(x0), activation, gamma))
    grid = np.linspace(-60, 60, 240_001)[:, None]  # brute force, step 5e-4
    cost = (np_act(activation, grid) - y) ** 2 + gamma * (grid - x0) ** 2
    best = grid[np.argmin(cost, axis=0), 0]
    np.testing.assert_allclose(x, best, atol=1e-3)
    got_cost = (np_act(activation, x) - y) ** 2 + gamma * (x - x0) ** 2
    assert np.all(got_cost <= cost.min(axis=0) + 1e-9)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_rinv_gradient_steps_decrease_the_objective(activation):
    rng = np.random.default_rng(7)
    lo, hi = (-1.2, 1.2) if activation == "tanh" else (-0.2, 1.2)  # some targets out of range
    y = tf.constant(rng.uniform(lo, hi, size=(16, 10)))
    x0 = tf.constant(rng.normal(size=(16, 10)))
    gamma = 0.2

    def objective(steps):
        x = tp_inverse.rinv_activation(y, x0, activation, gamma, num_steps=steps, lr=0.1)
        return np.array(tp_inverse.rinv_objective(x, y, x0, activation, gamma))

    start = objective(0)
    np.testing.assert_allclose(np.array(tp_inverse.rinv_activation(y, x0, activation, gamma, num_steps=0)),
                               np_act_inv(activation, np.array(y), None))  # the clipped exact inverse
    after = [objective(k) for k in (1, 2, 4)]
    assert np.all(after[0] <= start + 1e-12) and np.all(after[2] <= after[1] + 1e-12)
    assert after[2].sum() < 0.9 * start.sum()


def test_activation_inverses_of_the_seed():
    t = tf.constant([2.0, 0.5, -0.5, -2.0, -0.3, 0.0])
    a = tf.constant([1.0, 1.0, 1.0, 1.0, -0.7, 0.4])
    np.testing.assert_allclose(tp_inverse.activation_inverse(t, a, "relu"), [2.0, 0.5, 0.0, 0.0, -0.7, 0.0])
    np.testing.assert_allclose(tp_inverse.activation_inverse(t, a, "lrelu"), [2.0, 0.5, -2.5, -10.0, -1.5, 0.0])
    np.testing.assert_allclose(tp_inverse.activation_inverse(t, a, "tanh")[0], np.arctanh(0.99), rtol=1e-6)
    np.testing.assert_allclose(tp_inverse.activation_inverse(t, a, "sigmoid")[3], np.log(0.01 / 0.99), rtol=1e-5)


# ------------------------------------------------------------------------------------ dtp
def snapshot(variables):
    return [np.array(v) for v in variables]


@pytest.mark.parametrize("case", ["alpha_zero", "y_is_the_prediction"])
def test_dtp_difference_correction_leaves_the_network_alone_when_the_output_is_on_target(case):
    x, y = feedforward_data(n=16)
    model = build_model("dtp", "9-5-7", 6, 3, alpha_t=0.0 if case == "alpha_zero" else 0.5, seed=2)
    randomise_biases(model)
    if case == "y_is_the_prediction":
        y = model.predict(x, verbose=0)
    hs, _, z = np_forward(model, x)
    for t, h in zip(model_targets(model, x, y), hs[1:] + [z]):
        np.testing.assert_allclose(t, h, atol=1e-5)
    if case == "alpha_zero":
        forward = model.forward_pass(x, y, training=False)
        for t, h in zip(model.rule.targets(forward), forward.hidden + [forward.z]):
            np.testing.assert_array_equal(np.array(t), np.array(h))  # exactly, by the difference form
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    hidden = [v for b in model.blocks for v in b.trainable_variables]
    out = model.output_layer.trainable_variables
    inverses = [v for g in model.rule_layers for v in g.trainable_variables]
    before = snapshot(hidden + out + inverses)
    model.train_on_batch(x, y)
    moved = [np.abs(np.array(v) - b).max() for v, b in zip(hidden + out + inverses, before)]
    n_hidden, n_out = len(hidden), len(out)
    if case == "alpha_zero":
        assert max(moved[:n_hidden]) == 0.0  # hidden layers: exactly zero update
    else:
        assert max(moved[:n_hidden]) < 1e-7
        assert max(moved[n_hidden:n_hidden + n_out]) < 1e-6  # ∂L/∂z ≈ 0: the output layer stays too
    assert min(moved[n_hidden + n_out:]) > 1e-5  # the inverses learn regardless


def np_inverse_losses(model, x):
    """½ mean((g_l(f_l(h_{l−1})) − h_{l−1})²) without noise, l = 2..L+1."""
    hs, _, z = np_forward(model, x)
    outs = hs[1:] + [z]
    losses = []
    for l, g in enumerate(model.rule_layers, start=2):
        V, c = np.array(g.kernel, np.float64), np.array(g.bias, np.float64)
        rebuilt = np_act(model.network_config.activation, outs[l - 1] @ V + c)
        losses.append(0.5 * np.mean((rebuilt - hs[l - 1]) ** 2))
    return np.array(losses)


def test_dtp_inverses_learn_to_reconstruct(toy_classification):
    x, y = toy_classification
    model = build_model("dtp", "16-12-8", 12, 3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = np_inverse_losses(model, x)
    # shuffle=False: fit's shuffle draws from TensorFlow's global seed and op counter, i.e. from what
    # ran before in the process; the batches in order make the numbers the same in any test order.
    history = model.fit(x, y, batch_size=32, epochs=8, shuffle=False, verbose=0).history
    after = np_inverse_losses(model, x)
    assert np.all(after < 0.5 * before), (before, after)
    for l in (2, 3, 4):
        assert history[f"inverse_loss_{l}"][-1] < history[f"inverse_loss_{l}"][0]
    assert {"target_loss_1", "target_loss_2", "target_loss_3"} <= set(history)


def test_dtp_inverse_loss_detaches_the_forward_weights_and_uses_the_noise_schedule():
    x, y = feedforward_data(n=16)
    model = build_model("dtp", "9-5", 6, 3, inverse_noise=0.0, seed=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    with tf.GradientTape() as tape:
        losses = model.rule.local_losses(model.forward_pass(x, y))
        inverse = losses["inverse_loss_2"] + losses["inverse_loss_3"]
    forward_vars = [v for layer in model.weighted_layers for v in layer.trainable_variables]
    assert all(g is None for g in tape.gradient(inverse, forward_vars))
    np.testing.assert_allclose([losses["inverse_loss_2"], losses["inverse_loss_3"]], np_inverse_losses(model, x),
                               rtol=1e-5)
    noisy = build_model("dtp", "9-5", 6, 3, inverse_noise=1.0, seed=2)
    noisy.compile(optimizer=keras.optimizers.SGD(0.1))
    fp = noisy.forward_pass(x, y)
    early = noisy.rule.local_losses(fp)["inverse_loss_2"]
    noisy.optimizer.iterations.assign(10_000)  # σ_t = 1 / (1 + 100): almost no noise
    late = noisy.rule.local_losses(fp)["inverse_loss_2"]
    assert float(late) == pytest.approx(np_inverse_losses(noisy, x)[0], rel=0.05)
    assert float(early) > 2 * float(late)


# ------------------------------------------------------------------------------------ learning, saving
@pytest.mark.parametrize("rule", LEARNED)
def test_rule_lowers_the_loss_saves_loads_and_continues(rule, toy_classification, tmp_path):
    x, y = toy_classification
    model = build_model(rule, "32-16", 12, 3, activation="tanh", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["error_rate"], jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=8, shuffle=False, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    path = str(tmp_path / f"{rule}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    saved = model.trainable_variables + model.non_trainable_variables  # DTP: the noise seed state too
    assert len(saved) == len(loaded.trainable_variables + loaded.non_trainable_variables)
    for a, b in zip(loaded.trainable_variables + loaded.non_trainable_variables, saved):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    # One more epoch on each: the same step from the same state (weights, optimizer, noise generator).
    more = loaded.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert more["loss"][0] < history["loss"][0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_reconstruction_and_trackers():
    x, _ = feedforward_data(n=32, d=6)
    x = np.tanh(x)
    model = build_model("tp_rinv", "8-4-8", 6, 6, problem_type="reconstruction", trackers=["bp_cosine", "gradients"],
                        seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, x, batch_size=16, epochs=10, shuffle=False, verbose=0).history  # see above
    assert history["loss"][-1] < history["loss"][0]
    assert {"bp_cosine_1", "bp_cosine_3", "update_norm_4", "target_loss_3"} <= set(history)
    assert np.isfinite(history["bp_cosine_1"]).all()


def test_tiny_grid_next_to_bp(tmp_path):
    from bpfree import records, results
    from bpfree.tuning import SearchConfig, SearchSpace, run_search

    space = {"algorithm": ["bp", "dtp", "tp_lsq", "tp_rinv"], "arch": ["16"], "activation": ["tanh"],
             "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=2)
    summary = run_search(str(tmp_path), config, SearchSpace.create(space), log=lambda *a: None)
    assert summary["ran"] == 4
    frame = results.load(str(tmp_path))
    assert set(frame["algorithm"]) == {"bp", "dtp", "tp_lsq", "tp_rinv"} and set(frame["status"]) == {"completed"}
    assert {"alpha_t", "inverse_noise", "gamma", "num_steps_rinv", "lr_rinv"} <= set(frame)
    last = frame[frame["epoch"] == frame["epoch"].max()].set_index("algorithm")
    assert (last["val_error_rate"] < 50).all(), last["val_error_rate"]  # 10 classes: chance is 90 %
    dtp = [records.read(p) for p in records.iter_record_paths(summary["project_dir"])]
    dtp = next(d for d in dtp if d["hparams"]["algorithm"] == "dtp")
    assert "inverse_loss_2" in dtp["history"] and "target_loss_1" in dtp["history"]
    with pytest.raises(ValueError, match="batchnorm=True.*valid: False"):
        run_search(str(tmp_path / "bad"), config, SearchSpace.create({**space, "batchnorm": [True]}),
                   log=lambda *a: None)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("rule,kwargs,match", [
    ("tp_lsq", dict(activation="swish"), "cannot invert the activation 'swish'; valid: tanh, sigmoid, relu, lrelu"),
    ("tp_rinv", dict(activation="swish"), "valid: tanh, sigmoid, relu, lrelu, linear"),
    ("dtp", dict(batchnorm=True), "batchnorm=True \\(valid: False\\)"),
    ("tp_lsq", dict(dropout=0.2), "dropout=0.2 \\(valid: 0.0\\)"),
    ("tp_rinv", dict(gamma=0.0), "Invalid gamma 0.0 for tp_rinv: a number > 0"),
    ("tp_rinv", dict(num_steps_rinv=1.5), "Invalid num_steps_rinv 1.5"),
    ("dtp", dict(alpha_t=-1.0), "Invalid alpha_t -1.0"),
    ("dtp", dict(inverse_noise=float("nan")), "Invalid inverse_noise"),
    ("dtp", dict(gamma=0.1), "'gamma' is not an hparam of 'dtp'; its own hparams: alpha_t, inverse_noise"),
    ("dfa", dict(alpha_t=0.1), "'alpha_t' is not an hparam of 'dfa'; its own hparams: projection_pool"),
])
def test_bad_input_is_refused(rule, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(rule, "8-4", 6, 3, **kwargs)
