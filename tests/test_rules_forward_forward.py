"""Forward-Forward: its update against the gradient of the goodness loss in numpy (float64), in graph and
XLA, its negative labels, its prediction by total goodness, learning on digits, and the options it refuses.

eager/graph/XLA equality: test_compile_modes.py; saving and a grid next to bp: test_rules_together.py."""

import os
import sys

import numpy as np
import pytest

import bpfree
from bpfree import build_model
from bpfree.models import FFNetwork

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import softmax
from pepita_ff_reference import assert_updates, ff_model, pepita_batch, sgd_step, trained_on_digits


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


@pytest.mark.parametrize("algorithm, lr, epochs", [("ff", 0.03, 5)])
def test_lowers_the_loss_on_digits(algorithm, lr, epochs):
    start, history, end = trained_on_digits(algorithm, lr, epochs)
    # FF learns its own loss; the softmax over goodness stays soft, so its cross-entropy falls slowly.
    assert history["goodness_loss_1"][-1] < 0.95 * history["goodness_loss_1"][0], history
    assert end["loss"] < start["loss"] - 0.05 and end["error_rate"] < 60, (start, end)


def test_options_they_refuse_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"ff does not support batchnorm=True \(only False\)"):
        build_model("ff", "8", 5, 3, batchnorm=True)
    with pytest.raises(ValueError, match="Unknown activation 'tahn' for ff; valid: tanh, relu"):
        bpfree.models.check_options(bpfree.rules.get("ff"), "8", 5, 3, activation="tahn")
    with pytest.raises(ValueError, match="Unknown tracker 'bp_cosine' for ff"):
        build_model("ff", "8", 5, 3, trackers=("bp_cosine",))
    with pytest.raises(ValueError, match="Invalid threshold 0.0 for ff: a goodness threshold > 0"):
        build_model("ff", "8", 5, 3, threshold=0.0)
    assert build_model("ff", "8", 5, 3, activation="tanh", threshold=0.5).rule.threshold == 0.5
