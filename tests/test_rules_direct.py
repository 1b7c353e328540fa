"""The direct family: the output error (or the target) sent straight to every hidden layer — dfa, sdfa,
drtp — and the local losses cce and mse. One SGD step against numpy formulas (float64), sdfa's sign of
the error, learning on digits, saving and loading.

eager/graph/XLA equality: test_compile_modes.py; convolutions: test_conv_rules.py."""

import os
import sys

import keras
import numpy as np
import pytest

from bpfree import datasets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dense_rules_reference import run_one_step, updates_with_transposed_output_kernel
from feedback_variants_reference import N as VARIANTS_N
from feedback_variants_reference import assert_close, batch, one_step, tiny
from fresh_process import assert_learns_digits_and_reloads
from numpy_reference import assert_updates


# ------------------------------------------------------------------------ dfa, drtp, cce, mse
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", ("dfa", "drtp", "cce", "mse"))
def test_update_matches_formula(rule, use_bias):
    assert_updates(*run_one_step(rule, use_bias))


@pytest.mark.parametrize("rule", ["dfa", "cce", "mse"])
def test_reconstruction_update_matches_formula(rule):
    assert_updates(*run_one_step(rule, True, problem_type="reconstruction"))


@pytest.mark.parametrize("rule", ["dfa"])
def test_weight_decay_is_l2_on_kernels(rule):
    assert_updates(*run_one_step(rule, True, weight_decay=0.01))


@pytest.mark.parametrize("rule", ["dfa", "drtp"])
def test_update_under_xla(rule):
    assert_updates(*run_one_step(rule, True, jit=True))


@pytest.mark.parametrize("rule", ["dfa"])
def test_one_hidden_layer_with_transposed_output_kernel_equals_bp(rule):
    updates = updates_with_transposed_output_kernel(rule)
    for got, want in zip(updates[rule], updates["bp"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------ sdfa
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", ("sdfa",))
def test_one_step_matches_formula(rule, use_bias):
    assert_close(*one_step(rule, use_bias))


def test_sdfa_hidden_update_uses_only_the_sign_of_the_error():
    """Scaling the error (sample weights × 3) changes dfa's hidden update, not sdfa's."""
    def hidden_update(rule, w):
        model = tiny(rule)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
        W = np.array(model.weighted_layers[0].kernel)
        model.train_on_batch(*batch(), sample_weight=np.full(VARIANTS_N, w, "float32"))
        return np.array(model.weighted_layers[0].kernel) - W
    np.testing.assert_allclose(hidden_update("sdfa", 3.0), hidden_update("sdfa", 1.0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(hidden_update("dfa", 3.0), 3 * hidden_update("dfa", 1.0), rtol=1e-4, atol=1e-7)
    assert_close(*one_step("sdfa", True, weights=np.linspace(0.5, 2, VARIANTS_N)))


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load("digits", "train")
    return x[:512].reshape(512, -1), keras.utils.to_categorical(y[:512], 10).astype("float32")


@pytest.mark.parametrize("rule", ("sdfa",))
def test_learns_digits_and_loads_in_a_fresh_process(rule, digits, tmp_path):
    assert_learns_digits_and_reloads(rule, digits, tmp_path)
