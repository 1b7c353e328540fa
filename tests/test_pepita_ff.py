"""PEPITA and Forward-Forward: updates against numpy formulas (float64), predictions, learning on digits,
saving and loading in a fresh process, a tiny grid next to bp, and the options they refuse."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree import build_model, datasets, records
from bpfree.models import FFNetwork, Network
from bpfree.tuning import SearchConfig, SearchSpace, run_search

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import softmax  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, DIMS = 4, (5, 8, 6, 3)


def sgd_step(model, x, y, jit=False, run_eagerly=False):
    """The change of every weighted layer's kernel and bias after one SGD(lr = 1) step."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit, run_eagerly=run_eagerly)
    layers = model.weighted_layers
    before = [(np.array(l.kernel, np.float64), None if l.bias is None else np.array(l.bias, np.float64))
              for l in layers]
    model.train_on_batch(x, y)
    return [(np.array(l.kernel, np.float64) - W, None if b is None else np.array(l.bias, np.float64) - b)
            for l, (W, b) in zip(layers, before)], before


def assert_updates(got, want, use_bias):
    for l, ((dW, db), (eW, eb)) in enumerate(zip(got, want), start=1):
        assert np.abs(eW).max() > 1e-4, f"layer {l}: a vanishing update tests nothing"
        np.testing.assert_allclose(dW, eW, rtol=1e-5, atol=1e-6, err_msg=f"kernel of layer {l}")
        if use_bias:
            np.testing.assert_allclose(db, eb, rtol=1e-5, atol=1e-6, err_msg=f"bias of layer {l}")
        else:
            assert db is None


def nonzero_biases(model, rng):
    for layer in model.weighted_layers:
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape).astype("float32"))


# ----------------------------------------------------------------------------------------------- PEPITA
def pepita_expected(params, F, x, y, output_error):
    """ΔW_l = −h_{l−1}ᵉʳʳᵀ (h_l − h_lᵉʳʳ)/N, ΔW_out = −h_Lᵉʳʳᵀ e_top/N (SGD, lr = 1), as the paper's code."""
    Ws = [W for W, _ in params]
    bs = [np.zeros(W.shape[1]) if b is None else b for W, b in params]

    def run(h):
        hs = [h]
        for W, b in zip(Ws[:-1], bs[:-1]):
            hs.append(np.tanh(hs[-1] @ W + b))
        return hs, hs[-1] @ Ws[-1] + bs[-1]

    hs, z = run(x)
    e = softmax(z) - y
    hs_err, z_err = run(x + e @ F.T)
    e_top = softmax(z_err) - y if output_error == "modulated" else e
    deltas = [(h - h_err) / N for h, h_err in zip(hs[1:], hs_err[1:])] + [e_top / N]
    return [(-(h.T @ d), -d.sum(axis=0)) for h, d in zip(hs_err, deltas)]


def pepita_model(use_bias=True, f_scale=1.0, output_error="modulated", seed=3):
    model = build_model("pepita", "-".join(map(str, DIMS[1:-1])), DIMS[0], DIMS[-1], activation="tanh",
                        use_bias=use_bias, seed=seed, f_scale=f_scale, output_error=output_error)
    nonzero_biases(model, np.random.default_rng(1))
    return model


def pepita_batch():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(N, DIMS[0])).astype("float32")
    y = keras.utils.to_categorical([0, 2, 1, 2], DIMS[-1]).astype("float32")
    return x, y


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("output_error", ["modulated", "first"])
def test_pepita_update_matches_formula(use_bias, output_error):
    model = pepita_model(use_bias, output_error=output_error)
    assert isinstance(model, Network) and model.rule.get_config() == {"f_scale": 1.0, "output_error": output_error}
    x, y = pepita_batch()
    F = np.array(model.rule_layers[0].feedback, np.float64)
    assert F.shape == (DIMS[0], DIMS[-1]) and np.abs(F).max() <= np.sqrt(6 / DIMS[0])
    got, before = sgd_step(model, x, y)
    assert_updates(got, pepita_expected(before, F, x.astype(np.float64), y.astype(np.float64), output_error),
                   use_bias)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_pepita_update_is_the_same_in_eager_and_xla(mode):
    model = pepita_model()
    x, y = pepita_batch()
    F = np.array(model.rule_layers[0].feedback, np.float64)
    got, before = sgd_step(model, x, y, jit=mode == "xla", run_eagerly=mode == "eager")
    assert_updates(got, pepita_expected(before, F, x.astype(np.float64), y.astype(np.float64), "modulated"), True)


def test_pepita_with_a_zero_F_leaves_hidden_layers_unchanged():
    model = pepita_model(f_scale=0.0)
    assert not np.any(np.array(model.rule_layers[0].feedback))
    x, y = pepita_batch()
    got, _ = sgd_step(model, x, y)
    for dW, db in got[:-1]:
        assert not np.any(dW) and not np.any(db)
    assert np.abs(got[-1][0]).max() > 1e-3  # the output layer still learns, from e


def test_pepita_F_is_fixed_seeded_and_scaled():
    a, b, c = pepita_model(seed=5, f_scale=0.05), pepita_model(seed=5, f_scale=0.05), pepita_model(seed=6)
    Fa, Fb, Fc = (np.array(m.rule_layers[0].feedback) for m in (a, b, c))
    np.testing.assert_array_equal(Fa, Fb)
    assert not np.allclose(Fa, Fc / 20)
    assert np.abs(Fa).max() <= 0.05 * np.sqrt(6 / DIMS[0]) + 1e-7
    assert all(not v.trainable for v in a.rule_layers[0].weights)


# ----------------------------------------------------------------------------------------------- FF
def ff_forward(params, inputs):
    """[(u_l, a_l, h_l)] per layer: u the normalised input, a the pre-activation, h = relu(a)."""
    out, h = [], inputs
    for W, b in params:
        u = h / (np.sqrt((h**2).sum(axis=1, keepdims=True)) + 1e-4)
        a = u @ W + (0 if b is None else b)
        h = np.maximum(a, 0)
        out.append((u, a, h))
    return out


def embed(x, labels, classes):
    return np.concatenate([x, np.eye(classes)[labels]], axis=1)


def ff_expected(params, x, labels, wrong, classes, theta):
    """ΔW_l = −∂ℓ_l/∂W_l (SGD, lr = 1), ℓ_l = ½ (mean softplus(θ − g⁺) + mean softplus(g⁻ − θ)), g = mean h²."""
    n = len(x)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    both = np.concatenate([embed(x, labels, classes), embed(x, wrong, classes)])
    updates = []
    for u, a, h in ff_forward(params, both):
        g = (h**2).mean(axis=1)
        dg = np.concatenate([-0.5 * sigmoid(theta - g[:n]) / n, 0.5 * sigmoid(g[n:] - theta) / n])
        da = dg[:, None] * 2 * h / h.shape[1] * (a > 0)
        updates.append((-(u.T @ da), -da.sum(axis=0)))
    return updates


def ff_model(use_bias=True, threshold=2.0, seed=3, arch="8-6"):
    model = build_model("ff", arch, 5, 3, use_bias=use_bias, seed=seed, threshold=threshold)
    nonzero_biases(model, np.random.default_rng(1))
    return model


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_ff_update_matches_goodness_loss_gradient(use_bias, mode):
    model = ff_model(use_bias, threshold=0.05)
    assert isinstance(model, FFNetwork) and model.rule.get_config() == {"threshold": 0.05}
    x, y = pepita_batch()
    labels = np.argmax(y, axis=1)
    # The wrong labels the step will draw: read them, then rewind the seed generator.
    state = np.array(model.negative_labels.state)
    wrong = np.array(model.wrong_labels(labels))
    model.negative_labels.state.assign(state)
    assert np.all(wrong != labels) and np.all((0 <= wrong) & (wrong < 3))
    got, before = sgd_step(model, x, y, jit=mode == "xla")
    want = ff_expected(before, x.astype(np.float64), labels, wrong, 3, 0.05)
    assert_updates(got, want, use_bias)


def test_ff_wrong_labels_are_uniform_over_the_others():
    model = ff_model()
    labels = np.zeros(3000, "int32")
    wrong = np.array(model.wrong_labels(labels))
    counts = np.bincount(wrong, minlength=3)
    assert counts[0] == 0 and min(counts[1:]) > 1300


def test_ff_predicts_the_label_of_highest_total_goodness():
    model = ff_model()
    x = np.random.default_rng(4).normal(size=(7, 5)).astype("float32")
    params = [(np.array(l.kernel, np.float64), np.array(l.bias, np.float64)) for l in model.weighted_layers]
    G = np.stack([sum((h**2).mean(axis=1) for _, _, h in ff_forward(params, embed(x.astype(np.float64), [c] * 7, 3)))
                  for c in range(3)], axis=1)
    scores = np.array(model(x))
    np.testing.assert_allclose(scores, softmax(G), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.argmax(model.predict(x, verbose=0), axis=1), np.argmax(G, axis=1))


# ----------------------------------------------------------------------------------------------- both
@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load("digits", split="train")
    return x.reshape(len(x), -1), keras.utils.to_categorical(y, 10).astype("float32")


@pytest.mark.parametrize("algorithm, lr, epochs", [("pepita", 0.01, 3), ("ff", 0.03, 5)])
def test_lowers_the_loss_on_digits(digits, algorithm, lr, epochs):
    x, y = digits
    model = build_model(algorithm, "64", x.shape[1], 10, activation="relu", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(lr), metrics=["error_rate"])
    start = model.evaluate(x, y, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0).history
    end = model.evaluate(x, y, verbose=0, return_dict=True)
    if algorithm == "pepita":
        assert end["loss"] < 0.8 * start["loss"] and end["error_rate"] < 50, (start, end)
    else:
        # FF learns its own loss; the softmax over goodness stays soft, so its cross-entropy falls slowly.
        assert history["goodness_loss_1"][-1] < 0.95 * history["goodness_loss_1"][0], history
        assert end["loss"] < start["loss"] - 0.05 and end["error_rate"] < 60, (start, end)


def test_saved_models_load_in_a_fresh_process(tmp_path):
    x, y = pepita_batch()
    expected = {}
    for name, model in (("pepita", pepita_model(f_scale=0.3)), ("ff", ff_model())):
        model.compile(optimizer="adam", metrics=["error_rate"])
        model.train_on_batch(x, y)
        model.save(tmp_path / f"{name}.keras")
        expected[name] = {"pred": np.asarray(model.predict(x, verbose=0)).tolist(),
                          "weights": [np.asarray(w).tolist() for w in model.weights],
                          "rule": model.rule.get_config()}
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json
import numpy as np
import keras
import bpfree
x = np.load({str(tmp_path / 'x.npy')!r})
out = {{}}
for name in ("pepita", "ff"):
    m = keras.models.load_model({str(tmp_path)!r} + f"/{{name}}.keras")
    out[name] = {{"pred": np.asarray(m.predict(x, verbose=0)).tolist(),
                  "weights": [np.asarray(w).tolist() for w in m.weights], "rule": m.rule.get_config(),
                  "class": type(m).__name__}}
print("RESULT" + json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.split("RESULT", 1)[1])
    assert loaded["pepita"]["class"] == "Network" and loaded["ff"]["class"] == "FFNetwork"
    for name in ("pepita", "ff"):
        assert loaded[name]["rule"] == expected[name]["rule"]
        np.testing.assert_allclose(loaded[name]["pred"], expected[name]["pred"], rtol=1e-5, atol=1e-6)
        assert len(loaded[name]["weights"]) == len(expected[name]["weights"])
        for got, want in zip(loaded[name]["weights"], expected[name]["weights"]):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # F included


def test_a_tiny_grid_next_to_bp(tmp_path):
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1, use_xla=False)
    space = SearchSpace.create({"algorithm": ["bp", "pepita", "ff"], "arch": ["16"], "activation": ["relu"],
                                "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]})
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None)
    done = [records.read(p) for p in records.iter_record_paths(summary["project_dir"])]
    assert sorted(d["hparams"]["algorithm"] for d in done) == ["bp", "ff", "pepita"]
    assert all(d["status"] == "completed" and len(d["history"]["loss"]) == 1 for d in done)


def test_options_they_refuse_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"pepita does not support dropout=0.1 \(only 0.0\)"):
        build_model("pepita", "8", 5, 3, dropout=0.1)
    with pytest.raises(ValueError, match="Invalid f_scale -1.0 for pepita: a scale ≥ 0"):
        build_model("pepita", "8", 5, 3, f_scale=-1.0)
    with pytest.raises(ValueError, match="Unknown output_error 'last' for pepita; valid: modulated, first"):
        build_model("pepita", "8", 5, 3, output_error="last")
    with pytest.raises(ValueError, match=r"ff does not support batchnorm=True \(only False\)"):
        build_model("ff", "8", 5, 3, batchnorm=True)
    with pytest.raises(ValueError, match="Unknown activation 'tahn' for ff; valid: tanh, relu"):
        bpfree.models.check_options(bpfree.rules.get("ff"), "8", 5, 3, activation="tahn")
    with pytest.raises(ValueError, match="Unknown tracker 'bp_cosine' for ff"):
        build_model("ff", "8", 5, 3, trackers=("bp_cosine",))
    with pytest.raises(ValueError, match="Invalid threshold 0.0 for ff: a goodness threshold > 0"):
        build_model("ff", "8", 5, 3, threshold=0.0)
    assert build_model("ff", "8", 5, 3, activation="tanh", threshold=0.5).rule.threshold == 0.5
