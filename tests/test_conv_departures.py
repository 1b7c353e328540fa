"""The two choices of issue 25 where bpfree departed from the reference code, now hparams, exact against numpy.

- pepita's ``conv_update`` ("official": the authors' conv code's sign, ÷N and ÷P; "surrogate": the dense
  rule's gradient) and ``output_error="auto"`` (the first pass's error where the readout reads a conv block);
  its default checked against the authors' own formulation (`compute_delta_w_conv`'s loop over output
  positions, written here in numpy) on their kind of net (a 'valid' conv, relu, max pool, readout, no biases);
- dfa/sdfa/drtp's ``project_before_pool`` (the official DRTP code projects the map before the max pool);
in eager, graph and XLA modes (the one-step helpers and the numpy equations of test_conv_rules.py), the
refusals where they change nothing, and the saved configuration.
"""

import os
import sys

import keras
import numpy as np
import pytest

import bpfree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import softmax
from test_conv_rules import assert_step, one_step

DIRECT = ("dfa", "sdfa", "drtp")


# ------------------------------------------------------------------------------- pepita on convolutions
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("conv_update", ["official", "surrogate"])
@pytest.mark.parametrize("arch", ["maxpool", "readout"])
def test_pepita_conv_update_matches_the_equations(arch, conv_update, mode):
    """"maxpool": a dense layer reads the convs (auto = modulated); "readout": the output layer does (auto = first)."""
    got, want, model = one_step("pepita", True, arch=arch, jit=mode == "xla", graph=mode == "graph", f_scale=1.0,
                                conv_update=conv_update)
    assert model.rule.resolved_output_error(model) == ("first" if arch == "readout" else "modulated")
    assert_step(got, want, model)


def test_pepita_official_is_minus_one_over_n_p_times_the_surrogate_on_conv_layers():
    official, surrogate = (one_step("pepita", True, f_scale=1.0, conv_update=c) for c in ("official", "surrogate"))
    for (got_o, _, model), (got_s, _, _) in [(official, surrogate)]:
        for layer, positions in zip(model.weighted_layers, (8 * 8, 2 * 2, None)):
            ratio = -1.0 / (4 * positions) if positions else 1.0  # N = 4; the dense layers are the same
            np.testing.assert_allclose(got_o[layer.kernel.path], ratio * got_s[layer.kernel.path], rtol=1e-4,
                                       atol=1e-7, err_msg=layer.kernel.path)


def _valid_conv(x, W):
    k = W.shape[0]
    ho, wo = x.shape[1] - k + 1, x.shape[2] - k + 1
    return np.stack([np.stack([np.einsum("nijc,ijcd->nd", x[:, r:r + k, c:c + k], W) for c in range(wo)], 1)
                     for r in range(ho)], 1)


def test_pepita_defaults_are_the_authors_conv_code():
    """GiorgiaD/PEPITA main_pytorch.py with Net1conv1fcXL (conv → relu → max pool 2 → readout, no biases):
    e = softmax(z) − y per example; x_err = x + e Fᵀ; conv: Δw = Σ_positions mean_n (h − hᵉʳʳ) ⊗ patch(x_err) / P,
    readout (the first fc layer, reading the convs): Δw = −eᵀ pool(hᵉʳʳ) with the *first* pass's e;
    both applied as w += η Δw / N."""
    lr, n = 100.0, 4
    model = bpfree.build_model("pepita", "conv3k3v-pool2", (6, 6, 2), 3, activation="relu", use_bias=False, seed=3,
                               f_scale=1.0)
    assert model.rule.get_config() == {"f_scale": 1.0, "output_error": "auto", "conv_update": "official"}
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(n, 6, 6, 2))
    y = keras.utils.to_categorical([0, 2, 1, 2], 3).astype(np.float64)
    W1, W2 = (np.array(layer.kernel, np.float64) for layer in model.weighted_layers)
    F = np.array(model.rule_layers[0].feedback, np.float64)

    def run(inputs):
        h = np.maximum(_valid_conv(inputs, W1), 0)  # (n, 4, 4, 3)
        pooled = h.reshape(n, 2, 2, 2, 2, 3).max(axis=(2, 4))
        return h, pooled.reshape(n, -1)

    h, hp = run(x)
    e = softmax(hp @ W2) - y
    x_err = x + (e @ F.T).reshape(x.shape)
    h_err, hp_err = run(x_err)
    out_diff, dw, positions = h - h_err, np.zeros_like(W1), 0
    for r in range(4):
        for c in range(4):
            patch = x_err[:, r:r + 3, c:c + 3, :]
            dw += np.mean(out_diff[:, r, c][:, None, None, None, :] * patch[..., None], axis=0)
            positions += 1
    want = [lr * (dw / positions) / n, lr * -(hp_err.T @ e) / n]
    before = [W1, W2]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), run_eagerly=True)
    model.train_on_batch(x.astype("float32"), y.astype("float32"))
    for layer, w0, w in zip(model.weighted_layers, before, want):
        assert np.abs(w).max() > 1e-3, layer.kernel.path
        np.testing.assert_allclose(np.array(layer.kernel, np.float64) - w0, w, rtol=1e-4, atol=1e-5,
                                   err_msg=layer.kernel.path)


def test_pepita_refuses_a_zero_f_scale_on_conv_nets_too():
    with pytest.raises(ValueError, match=r"^Invalid f_scale 0\.0 for pepita: a scale > 0 \(0 would give the hidden "
                                         r"layers no feedback\)\.$"):
        bpfree.build_model("pepita", "conv3k3-pool2-5", (8, 8, 2), 3, f_scale=0.0)


# ------------------------------------------------------------------------------- direct rules: before the pool
@pytest.mark.parametrize("rule", DIRECT)
@pytest.mark.parametrize("arch,pool", [("maxpool", 1), ("maxpool", 2), ("avgpool", 1)])
def test_project_before_pool_matches_the_equations(rule, arch, pool):
    """B_l of a pooling block has the unpooled map's rows (÷ projection_pool² after its average pooling);
    blocks that do not pool are projected as before (expected_updates: test_conv_rules.py)."""
    got, want, model = one_step(rule, True, arch=arch, project_before_pool=True, projection_pool=pool)
    rows = {("maxpool", 1): [8 * 8 * 3, 2 * 2 * 4, 5], ("maxpool", 2): [4 * 4 * 3, 1 * 1 * 4, 5],
            ("avgpool", 1): [5 * 5 * 2, 2 * 2 * 3, 4]}[arch, pool]
    assert [p.feedback.shape[0] for p in model.projections] == rows
    assert_step(got, want, model)


@pytest.mark.parametrize("mode", ["graph", "xla"])
@pytest.mark.parametrize("rule", DIRECT)
def test_project_before_pool_in_graph_and_xla(rule, mode):
    assert_step(*one_step(rule, True, jit=mode == "xla", graph=mode == "graph", project_before_pool=True))


def test_project_before_pool_differs_from_the_pooled_projection_only_where_a_block_pools():
    """"maxpool": the first block pools (its B and update change), the second does not (the same B, the same update)."""
    (got_b, _, model_b), (got_a, _, model_a) = (one_step("drtp", True, project_before_pool=b) for b in (False, True))
    first, second = (layer.kernel.path for layer in model_a.weighted_layers[:2])
    assert model_a.projections[0].feedback.shape[0] == 4 * model_b.projections[0].feedback.shape[0]
    assert not np.allclose(got_a[first], got_b[first], atol=1e-5)
    for l in (1, 2):
        np.testing.assert_array_equal(np.array(model_a.projections[l].feedback), np.array(model_b.projections[l].feedback))
    np.testing.assert_allclose(got_a[second], got_b[second], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("rule", DIRECT)
@pytest.mark.parametrize("arch,shape", [("8-4", 6), ("conv3k3-conv2k3s2-5", (8, 8, 2))])
def test_project_before_pool_is_refused_where_no_block_pools(rule, arch, shape):
    with pytest.raises(ValueError, match=rf"^{rule}'s project_before_pool=True changes nothing on a network without "
                                         r"a pooling convolution block \(valid there: False, the default\)\.$"):
        bpfree.build_model(rule, arch, shape, 3, project_before_pool=True)
    with pytest.raises(ValueError, match=f"^Invalid project_before_pool 'yes' for {rule}: true or false"):
        bpfree.build_model(rule, "conv3k3-pool2-5", (8, 8, 2), 3, project_before_pool="yes")


@pytest.mark.parametrize("rule", DIRECT)
def test_convert_refuses_project_before_pool(rule):
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs))
    source = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h)))
    with pytest.raises(ValueError, match=rf"^Cannot convert a model for {rule} with project_before_pool=True: a "
                                         r"converted block's activity is the end of its chain, poolings included "
                                         r"\(valid here: False\)\.$"):
        bpfree.convert(source, rule, seed=0, project_before_pool=True)
    assert bpfree.convert(source, rule, seed=0).projections[0].feedback.shape == (4 * 4 * 3, 3)


# ------------------------------------------------------------------------------- saved configuration
@pytest.mark.parametrize("rule,options", [("pepita", {"conv_update": "surrogate", "output_error": "first"}),
                                          ("pepita", {}), ("sdfa", {"project_before_pool": True, "projection_pool": 2})])
def test_the_new_hparams_survive_saving(tmp_path, rule, options):
    model = bpfree.build_model(rule, "conv3k3-pool2-5", (8, 8, 2), 3, seed=2, **options)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 8, 8, 2)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 2, 0], 3).astype("float32")
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.rule.get_config() == model.rule.get_config() == {**type(model.rule).hparams(), **options}
    assert [p.feedback.shape for p in loaded.projections] == [p.feedback.shape for p in model.projections]
    np.testing.assert_array_equal(np.array(loaded(x)), np.array(model(x)))
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.weighted_layers, loaded.weighted_layers):
        np.testing.assert_allclose(np.array(a.kernel), np.array(b.kernel), rtol=1e-6, atol=1e-7)
