"""The feedback-alignment family: bp (the reference), fa, kp, and the sign-symmetry rules usf, frsf, brsf.
One SGD step against numpy formulas (float64), their defining properties (kp's B converging to W, usf
as fa with B = sign(W)·scale, brsf's redraws), learning on digits, saving and loading.

eager/graph/XLA equality: test_compile_modes.py; convolutions: test_conv_rules.py."""

import os
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree import datasets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dense_rules_reference import run_one_step, updates_with_transposed_output_kernel
from feedback_variants_reference import assert_close, batch, one_step, tiny
from fresh_process import assert_learns_digits_and_reloads
from numpy_reference import assert_updates

VARIANTS = ("kp", "usf", "brsf", "frsf")


# ------------------------------------------------------------------------ bp and fa (fixed feedback)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", ("bp", "fa"))
def test_update_matches_formula(rule, use_bias):
    assert_updates(*run_one_step(rule, use_bias))


@pytest.mark.parametrize("rule", ["bp", "fa"])
def test_reconstruction_update_matches_formula(rule):
    assert_updates(*run_one_step(rule, True, problem_type="reconstruction"))


@pytest.mark.parametrize("rule", ["bp"])
def test_weight_decay_is_l2_on_kernels(rule):
    assert_updates(*run_one_step(rule, True, weight_decay=0.01))


@pytest.mark.parametrize("rule", ["fa"])
def test_update_under_xla(rule):
    assert_updates(*run_one_step(rule, True, jit=True))


@pytest.mark.parametrize("rule", ["fa"])
def test_one_hidden_layer_with_transposed_output_kernel_equals_bp(rule):
    updates = updates_with_transposed_output_kernel(rule)
    for got, want in zip(updates[rule], updates["bp"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------ kp, usf, brsf, frsf
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", VARIANTS)
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
        for layer in fa.weighted_layers[1:]:
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


@pytest.mark.parametrize("rule", ("kp", "usf", "brsf", "frsf"))
def test_learns_digits_and_loads_in_a_fresh_process(rule, digits, tmp_path):
    assert_learns_digits_and_reloads(rule, digits, tmp_path)


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
