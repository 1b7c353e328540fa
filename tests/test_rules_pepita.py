"""PEPITA: its update against numpy formulas (float64) with both output errors, in eager and XLA, its fixed
seeded F, learning on digits, and the options it refuses.

graph-mode equality: test_compile_modes.py; convolutions: test_conv_rules.py; saving and a grid next
to bp: test_rules_together.py."""

import os
import sys

import numpy as np
import pytest

from bpfree import build_model
from bpfree.models import Network

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import softmax
from pepita_ff_reference import N, DIMS, assert_updates, pepita_batch, pepita_model, sgd_step, trained_on_digits


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


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("output_error", ["modulated", "first", "auto"])
def test_pepita_update_matches_formula(use_bias, output_error):
    """"auto", the default, is "modulated" on a dense net (the authors' fully connected code)."""
    model = pepita_model(use_bias, output_error=output_error)
    assert isinstance(model, Network) and model.rule.get_config() == {
        "f_scale": 1.0, "output_error": output_error, "conv_update": "official"}
    assert model.rule.resolved_output_error(model) == ("modulated" if output_error == "auto" else output_error)
    output_error = model.rule.resolved_output_error(model)
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


def test_pepita_refuses_a_zero_F():
    """f_scale = 0 makes F = 0: both passes coincide and the hidden layers never learn (issue 26, item 5)."""
    for value in (0, 0.0, -0.0):
        with pytest.raises(ValueError, match=r"^Invalid f_scale (0|0\.0|-0\.0) for pepita: a scale > 0 \(0 would give "
                                             r"the hidden layers no feedback\)\.?$"):
            build_model("pepita", "8", 5, 3, f_scale=value)


def test_pepita_F_is_fixed_seeded_and_scaled():
    a, b, c = pepita_model(seed=5, f_scale=0.05), pepita_model(seed=5, f_scale=0.05), pepita_model(seed=6)
    Fa, Fb, Fc = (np.array(m.rule_layers[0].feedback) for m in (a, b, c))
    np.testing.assert_array_equal(Fa, Fb)
    assert not np.allclose(Fa, Fc / 20)
    assert np.abs(Fa).max() <= 0.05 * np.sqrt(6 / DIMS[0]) + 1e-7
    assert all(not v.trainable for v in a.rule_layers[0].weights)


@pytest.mark.parametrize("algorithm, lr, epochs", [("pepita", 0.01, 3)])
def test_lowers_the_loss_on_digits(algorithm, lr, epochs):
    start, _, end = trained_on_digits(algorithm, lr, epochs)
    assert end["loss"] < 0.8 * start["loss"] and end["error_rate"] < 50, (start, end)


def test_options_they_refuse_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"pepita does not support dropout=0.1 \(only 0.0\)"):
        build_model("pepita", "8", 5, 3, dropout=0.1)
    with pytest.raises(ValueError, match="Invalid f_scale -1.0 for pepita: a scale > 0"):
        build_model("pepita", "8", 5, 3, f_scale=-1.0)
    with pytest.raises(ValueError, match="Unknown output_error 'last' for pepita; valid: auto, modulated, first"):
        build_model("pepita", "8", 5, 3, output_error="last")
    with pytest.raises(ValueError, match="Unknown conv_update 'sqrt' for pepita; valid: official, surrogate"):
        build_model("pepita", "conv4k3-8", (6, 6, 1), 3, conv_update="sqrt")
    with pytest.raises(ValueError, match=r"^pepita's conv_update='surrogate' changes nothing on a network without "
                                         r"convolution blocks \(valid there: 'official', the default\)\.$"):
        build_model("pepita", "8", 5, 3, conv_update="surrogate")
