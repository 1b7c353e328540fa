"""kp, usf, brsf, frsf and sdfa: one SGD step against numpy formulas, their defining properties, learning
on digits, saving, and a tiny grid next to bp."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree import datasets
from bpfree.tuning import SearchConfig, SearchSpace, run_search

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import assert_updates, hash_uniform, softmax  # noqa: E402

NEW = ("kp", "usf", "brsf", "frsf", "sdfa")
N, DIMS = 8, (6, 5, 4, 3)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def backward_matrices(rule, model, Ws):
    """{l (0-based): B_l} the rule's backward pass uses, from the weights before the step."""
    Bs = {}
    for l in range(1, len(Ws)):
        W, layer = Ws[l], model.weighted_layers[l]
        s = np.sqrt(2.0 / sum(W.shape))
        if rule in ("kp",):
            Bs[l] = np.array(layer.feedback, dtype=np.float64)
        elif rule == "usf":
            Bs[l] = np.sign(W) * s
        elif rule == "frsf":
            Bs[l] = np.abs(np.array(layer.feedback, dtype=np.float64)) * np.sign(W)
        elif rule == "brsf":
            step = int(layer.feedback_step)
            R = np.sqrt(3) * s * (2 * hash_uniform(W.shape, layer.feedback_seed, step) - 1)
            Bs[l] = np.abs(R) * np.sign(W)
    return Bs


def expected_updates(rule, model, Ws, bs, x, y, decay=0.0, weights=None):
    hs = [x]
    for W, b in zip(Ws[:-1], bs[:-1]):
        hs.append(np.tanh(hs[-1] @ W + b))
    w = np.ones(len(x)) if weights is None else weights
    e = (softmax(hs[-1] @ Ws[-1] + bs[-1]) - y) * w[:, None] / len(x)  # ∂ mean weighted CE / ∂z
    L = len(Ws) - 1
    deltas = [None] * L + [e]
    if rule == "sdfa":
        P = [np.array(p.feedback, dtype=np.float64) for p in model.projections]
        for l in range(L):
            deltas[l] = (np.sign(e) / len(x)) @ P[l].T * (1 - hs[l + 1] ** 2)
    else:
        Bs = backward_matrices(rule, model, Ws)
        for l in reversed(range(L)):
            deltas[l] = (deltas[l + 1] @ Bs[l + 1].T) * (1 - hs[l + 1] ** 2)
    dW = [-(h.T @ d) - decay * W for h, d, W in zip(hs, deltas, Ws)]
    db = [-d.sum(axis=0) for d in deltas]
    dB = {l: dW[l] + decay * Ws[l] - decay * Bs[l] for l in Bs} if rule == "kp" else {}
    return dW, db, dB


def tiny(rule, use_bias=True, seed=3, **hparams):
    return bpfree.build_model(rule, "5-4", DIMS[0], DIMS[-1], activation="tanh", use_bias=use_bias, seed=seed,
                              **hparams)


def batch(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(N, DIMS[0])).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, N), 3).astype("float32")
    return x, y


def one_step(rule, use_bias, jit=False, weights=None, steps_before=0, **hparams):
    model = tiny(rule, use_bias, **hparams)
    rng = np.random.default_rng(4)
    for layer in model.weighted_layers:
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit)
    for k in range(steps_before):  # brsf: a draw later in the sequence
        model.train_on_batch(*batch(10 + k))
    x, y = batch()
    Ws = [np.array(l.kernel, dtype=np.float64) for l in model.weighted_layers]
    bs = [np.array(l.bias, dtype=np.float64) if use_bias else np.zeros(l.units) for l in model.weighted_layers]
    Bvars = {l: layer.feedback for l, layer in enumerate(model.weighted_layers) if rule == "kp" and l > 0}
    Bs = {l: np.array(v, dtype=np.float64) for l, v in Bvars.items()}
    want = expected_updates(rule, model, Ws, bs, x.astype(np.float64), y.astype(np.float64),
                            decay=model.rule.decay if rule == "kp" else 0.0, weights=weights)
    model.train_on_batch(x, y, sample_weight=weights)
    got_W = [np.array(l.kernel, dtype=np.float64) - W for l, W in zip(model.weighted_layers, Ws)]
    got_b = [np.array(l.bias, dtype=np.float64) - b for l, b in zip(model.weighted_layers, bs)]
    got_B = {l: np.array(Bvars[l], dtype=np.float64) - Bs[l] for l in Bvars}
    return (got_W, got_b if use_bias else None, got_B), want


def assert_close(got, want):
    (gW, gb, gB), (wW, wb, wB) = got, want
    assert_updates(gW, gb, wW, wb)
    assert set(gB) == set(wB)
    for l in gB:
        np.testing.assert_allclose(gB[l], wB[l], rtol=1e-5, atol=1e-6, err_msg=f"B of layer {l + 1}")


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", NEW)
def test_one_step_matches_formula(rule, use_bias):
    assert_close(*one_step(rule, use_bias))


def test_kp_decay_and_brsf_later_draw_and_xla():
    assert_close(*one_step("kp", True, decay=0.05))
    assert_close(*one_step("kp", True, decay=0.0))
    assert_close(*one_step("brsf", True, steps_before=2))
    assert_close(*one_step("brsf", True, jit=True, steps_before=1))


def test_usf_is_fa_with_b_set_to_sign_w_times_scale_at_every_step():
    usf, fa = tiny("usf"), tiny("fa")
    for m in (usf, fa):
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    for k in range(3):
        for l, layer in enumerate(fa.weighted_layers[1:], start=2):
            W = np.array(layer.kernel)
            layer.feedback.assign(np.sign(W) * np.sqrt(2.0 / sum(W.shape)))
        for m in (usf, fa):
            m.train_on_batch(*batch(k))
    for a, b in zip(usf.weighted_layers, fa.weighted_layers):
        np.testing.assert_allclose(np.array(a.kernel), np.array(b.kernel), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.array(a.bias), np.array(b.bias), rtol=1e-5, atol=1e-7)


def test_brsf_redraws_every_batch_and_repeats_with_the_seed():
    def draws(seed):
        model = tiny("brsf", seed=seed)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        layer = model.weighted_layers[1]
        out = []
        for k in range(2):
            out.append(np.array(layer.random_magnitudes(layer.feedback_step)))
            model.train_on_batch(*batch(k))
        return out, int(layer.feedback_step)
    (a0, a1), steps = draws(3)
    (b0, b1), _ = draws(3)
    assert steps == 2 and not np.allclose(a0, a1)
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(a1, b1)
    assert not np.allclose(a0, draws(4)[0][0])


def test_sdfa_hidden_update_uses_only_the_sign_of_the_error():
    """Scaling the error (sample weights × 3) changes dfa's hidden update, not sdfa's."""
    def hidden_update(rule, w):
        model = tiny(rule)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
        W = np.array(model.weighted_layers[0].kernel)
        model.train_on_batch(*batch(), sample_weight=np.full(N, w, "float32"))
        return np.array(model.weighted_layers[0].kernel) - W
    np.testing.assert_allclose(hidden_update("sdfa", 3.0), hidden_update("sdfa", 1.0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(hidden_update("dfa", 3.0), 3 * hidden_update("dfa", 1.0), rtol=1e-4, atol=1e-7)
    assert_close(*one_step("sdfa", True, weights=np.linspace(0.5, 2, N)))


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load("digits", "train")
    return x[:512].reshape(512, -1), keras.utils.to_categorical(y[:512], 10).astype("float32")


def test_kp_feedback_converges_to_the_forward_weights(digits):
    """Under SGD both get the same gradient, so B − W shrinks by exactly (1 − ηλ) a step; alignment → 1."""
    x, y = digits
    lr, decay, epochs = 0.2, 0.25, 6  # 8 batches an epoch
    model = bpfree.build_model("kp", "32", x.shape[1], 10, seed=0, trackers=("weight_alignment",), decay=decay)
    model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=False)
    layer = model.output_layer
    gap = np.array(layer.feedback) - np.array(layer.kernel)
    start = float(bpfree.trackers.cosine(layer.kernel, layer.feedback))
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0).history
    np.testing.assert_allclose(np.array(layer.feedback) - np.array(layer.kernel),
                               (1 - lr * decay) ** (8 * epochs) * gap, rtol=1e-3, atol=1e-6)
    end = float(bpfree.trackers.cosine(layer.kernel, layer.feedback))
    assert start < 0.2 and end > 0.95, (start, end)
    assert history["weight_alignment_2"][-1] > 0.9 > history["weight_alignment_2"][0]  # epoch means


@pytest.mark.parametrize("rule", NEW)
def test_learns_digits_and_loads_in_a_fresh_process(rule, digits, tmp_path):
    x, y = digits
    model = bpfree.build_model(rule, "32", x.shape[1], 10, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < 0.75 * before, (before, after)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x[:16])
    expected = np.asarray(model.predict(x[:16], verbose=0))
    script = f"""
import json, numpy as np, keras
import bpfree
model = keras.models.load_model({str(tmp_path / 'm.keras')!r})
print("RESULT" + json.dumps(np.asarray(model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)).tolist()))
"""
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(json.loads(done.stdout.split("RESULT", 1)[1]), expected, rtol=1e-5, atol=1e-6)


def test_saved_state_round_trips_in_process(tmp_path):
    """kp's learned B and brsf's draw counter travel with the model (so a resumed run goes on)."""
    for rule in ("kp", "brsf", "frsf"):
        model = tiny(rule)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.train_on_batch(*batch())
        model.save(tmp_path / f"{rule}.keras")
        loaded = keras.models.load_model(tmp_path / f"{rule}.keras")
        for a, b in zip(model.weights, loaded.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{rule}: {a.path}")
        assert loaded.weighted_layers[1].get_config() == model.weighted_layers[1].get_config()


def test_fa_layer_config_and_saved_variables_unchanged():
    layer = tiny("fa").weighted_layers[1]
    assert "backward" not in layer.get_config()
    assert [v.path.rsplit("/", 1)[-1] for v in layer._saved_variables()] == ["kernel", "bias", "feedback"]


def test_bad_hparams_and_layer_option_are_refused():
    with pytest.raises(ValueError, match="decay"):
        bpfree.rules.get("kp", decay=-1.0)
    with pytest.raises(ValueError, match="backward.*valid"):
        bpfree.layers.FeedbackAlignmentDense(3, backward="learnt")


def test_tiny_grid_next_to_bp(tmp_path):
    space = {"algorithm": ["bp", *NEW], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1, use_xla=False)
    summary = run_search(str(tmp_path), config, SearchSpace.create(space), log=lambda *a: None)
    table = bpfree.results.load(str(tmp_path))
    assert set(table["algorithm"]) == {"bp", *NEW}, summary
    assert (table["status"] == "completed").all(), table[["algorithm", "status"]]
