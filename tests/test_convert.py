"""`bpfree.convert`: a user's Keras model trained by a rule. Its update equals the update of the same network
built from an arch string (dense and conv, with batch norm and dropout), and on a residual graph an
independent numpy computation; it saves and loads in a fresh process; what a rule cannot train is refused
in one line naming the layer."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree.models import build_model
from bpfree.models.convert import convertible_names
from fresh_process import fresh_env

WEIGHT_SWAPPING = ("bp", "fa", "kp", "usf", "brsf", "frsf")
DIRECT = ("dfa", "drtp", "sdfa", "cce", "mse", "pepita")
RNG = np.random.default_rng(0)


def copy_weights(source_layers, target_layers):
    for a, b in zip(source_layers, target_layers, strict=True):
        b.kernel.assign(a.kernel)
        b.bias.assign(a.bias)


def weighted(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]


def assert_same_update(arch_net, converted, x, y):
    arch_net.compile()
    converted.compile()
    expected = arch_net.rule_gradients(x, y)
    got = converted.rule_gradients(x, y)
    assert [v.shape for v in arch_net.trainable_variables] == [v.shape for v in converted.trainable_variables]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-5, atol=1e-7)


def test_convertible_rules_are_the_feedforward_rules_without_inverses():
    assert set(convertible_names()) == set(WEIGHT_SWAPPING + DIRECT)


# ----------------------------------------------------------------------------- equal to an arch string
@pytest.mark.parametrize("rule", WEIGHT_SWAPPING + DIRECT)
def test_sequential_dense_model_gets_the_arch_string_networks_update(rule):
    source = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="tanh"),
                               keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(5, activation="softmax")])
    net = build_model(rule, "32-16", 20, 5, seed=7)
    copy_weights(net.weighted_layers, weighted(source))  # the arch string's weights into the user's model
    converted = bpfree.convert(source, rule, seed=7)
    x = RNG.normal(size=(8, 20)).astype("float32")
    y = np.eye(5, dtype="float32")[np.arange(8) % 5]
    np.testing.assert_array_equal(converted(x), source(x))
    assert_same_update(net, converted, x, y)


def conv_source(batchnorm, dropout):
    """The functional twin of "conv4k3-pool2-conv6k3s2v-8" (relu) with the arch string's block order."""
    def block(h, layer):
        h = layer(h)
        if batchnorm:
            h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h) if isinstance(layer, keras.layers.Conv2D) and layer.strides[0] == 2 else \
            keras.layers.Activation("relu")(h)
        return keras.layers.Dropout(dropout)(h) if dropout else h
    inputs = keras.Input((12, 12, 2))
    h = keras.layers.MaxPooling2D(2)(block(inputs, keras.layers.Conv2D(4, 3, padding="same")))
    h = block(h, keras.layers.Conv2D(6, 3, strides=2, padding="valid"))
    h = block(keras.layers.Flatten()(h), keras.layers.Dense(8))
    return keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Dense(4)(h)))


@pytest.mark.parametrize("rule,batchnorm,dropout", [
    *[(rule, bn, drop) for rule in ("bp", "fa", "dfa", "drtp", "cce", "brsf") for bn, drop in ((False, 0.0), (True, 0.25))],
    ("pepita", False, 0.0)])  # pepita refuses batch norm and dropout (test_refusals_...)
def test_functional_conv_model_gets_the_arch_string_networks_update(rule, batchnorm, dropout):
    net = build_model(rule, "conv4k3-pool2-conv6k3s2v-8", (12, 12, 2), 4, seed=3, activation="relu",
                      batchnorm=batchnorm, dropout=dropout)
    source = conv_source(batchnorm, dropout)
    copy_weights(net.weighted_layers, weighted(source))
    converted = bpfree.convert(source, rule, seed=3)
    x = RNG.normal(size=(6, 12, 12, 2)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(6) % 4]
    assert_same_update(net, converted, x, y)  # the same dropout masks too: seeded from (seed, block)


# ----------------------------------------------------------------------------- a residual graph, in numpy
def residual_source():
    """x → d1 (tanh) → d2 (linear) → Add(h1, a2) → tanh → out (softmax)."""
    inputs = keras.Input((6,))
    h1 = keras.layers.Dense(5, activation="tanh", name="d1")(inputs)
    a2 = keras.layers.Dense(5, name="d2")(h1)
    s = keras.layers.Activation("tanh", name="join_act")(keras.layers.Add(name="join")([h1, a2]))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(s))


def residual_forward(net, x, y):
    """The numpy forward pass of `residual_source`'s graph with `net`'s weights (float64): the weights
    [(W_l, b_l)], h1, s (the joined activity the output reads) and e = (softmax(z) − y)/N."""
    weights = [(np.asarray(l.kernel, np.float64), np.asarray(l.bias, np.float64)) for l in net.weighted_layers]
    (w1, b1), (w2, b2), (w3, b3) = weights
    h1 = np.tanh(x @ w1 + b1)
    s = np.tanh(h1 + h1 @ w2 + b2)
    z = s @ w3 + b3
    q = np.exp(z - z.max(1, keepdims=True))
    return weights, h1, s, (q / q.sum(1, keepdims=True) - y) / len(x)


def assert_rule_gradients(net, x, y, expected):
    net.compile()
    got = net.rule_gradients(x.astype("float32"), y.astype("float32"))
    for g, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), want, rtol=1e-5, atol=1e-7)


def test_dfa_on_a_residual_graph_equals_numpy():
    """Blocks: h1 = d1's output (two readers: its chain is empty), h2 = a2 (an Add reads it first);
    e = (softmax(z) − y)/N; δ2 = e B2ᵀ (linear), δ1 = (e B1ᵀ) ⊙ (1 − h1²); the output layer reads s."""
    net = bpfree.convert(residual_source(), "dfa", seed=5)
    x = RNG.normal(size=(4, 6))
    y = np.eye(3)[[0, 1, 2, 0]]
    _, h1, s, e = residual_forward(net, x, y)
    B1, B2 = (np.asarray(p.feedback, np.float64) for p in net.projections)
    d2 = e @ B2.T
    d1 = (e @ B1.T) * (1 - h1**2)
    assert_rule_gradients(net, x, y, [x.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), s.T @ e, e.sum(0)])


def test_fa_on_a_residual_graph_equals_numpy():
    """The error reaches h1 twice: through the skip (identity) and through d2's feedback matrix B2."""
    net = bpfree.convert(residual_source(), "fa", seed=5)
    x = RNG.normal(size=(4, 6))
    y = np.eye(3)[[0, 1, 2, 0]]
    _, h1, s, e = residual_forward(net, x, y)
    B2, B3 = (np.asarray(l.feedback, np.float64) for l in net.weighted_layers[1:])
    d_join = (e @ B3.T) * (1 - s**2)
    d1 = (d_join + d_join @ B2.T) * (1 - h1**2)
    assert_rule_gradients(net, x, y, [x.T @ d1, d1.sum(0), h1.T @ d_join, d_join.sum(0), s.T @ e, e.sum(0)])


# ----------------------------------------------------------------------------- refusals
def test_refusals_name_the_layer_or_the_rule():
    residual = residual_source()
    with pytest.raises(ValueError, match="pepita: layer 'out' reads 'join_act'.*chain"):
        bpfree.convert(keras.Model(residual.inputs, residual.outputs), "pepita")
    with pytest.raises(ValueError, match="rule 'dtp'.*rules that train a converted model: bp"):
        bpfree.convert(residual, "dtp")
    with pytest.raises(ValueError, match="rule 'gle'"):
        bpfree.convert(residual, "gle")
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, name="stretched", dilation_rate=2)(inputs)
    dilated = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h)))
    with pytest.raises(ValueError, match="Conv2D 'stretched' \\(dilation_rate"):
        bpfree.convert(dilated, "fa")
    lstm = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2, name="memory"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Cannot convert layer 'memory' \\(LSTM\\): the layers a rule can train are Dense"):
        bpfree.convert(lstm, "bp")
    logits = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="logits")])
    with pytest.raises(ValueError, match="output 'logits' applies 'linear'; for classification it must be one of softmax"):
        bpfree.convert(logits, "bp")
    on_map = keras.Model(inputs, keras.layers.Dense(2, name="per_pixel", activation="softmax")(inputs))
    with pytest.raises(ValueError, match="Dense 'per_pixel': it reads a tensor of shape"):
        bpfree.convert(on_map, "bp")
    with pytest.raises(ValueError, match="not built"):
        bpfree.convert(keras.Sequential([keras.layers.Dense(2)]), "bp")
    with pytest.raises(ValueError, match="pepita does not support batchnorm"):
        bpfree.convert(conv_source(True, 0.0), "pepita")


def test_bad_input_from_the_command_line_style_checks():
    with pytest.raises(ValueError, match="bw_init"):
        bpfree.convert(residual_source(), "fa", bw_init="nope")
    with pytest.raises(ValueError, match="problem_type"):
        bpfree.convert(residual_source(), "fa", problem_type="ranking")


# ----------------------------------------------------------------------------- fit, save, load
def test_fit_save_and_load_in_a_fresh_process(tmp_path):
    # No dropout: Keras's .keras format leaves out dropout seed-generator states (for every model; the
    # search's checkpoints keep them), so a loaded model's next masks would differ.
    source = conv_source(True, 0.0)
    model = bpfree.convert(source, "dfa", seed=11, trackers=("weights", "local_loss", "bp_cosine"))
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["error_rate"])
    x = RNG.normal(size=(16, 12, 12, 2)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(16) % 4]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "converted.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    expected_before = np.asarray(model(x))
    model.train_on_batch(x, y)
    expected_after = np.asarray(model(x))
    script = f"""
import json, numpy as np, keras, bpfree
model = keras.models.load_model({str(path)!r})
x, y = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'y.npy')!r})
before = np.asarray(model(x)).tolist()
model.train_on_batch(x, y)
print("RESULT" + json.dumps([type(model).__name__, model.rule.name, before, np.asarray(model(x)).tolist()]))
"""
    env = fresh_env()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    kind, rule, before, after = json.loads(done.stdout.split("RESULT", 1)[1])
    assert (kind, rule) == ("ConvertedNetwork", "dfa")
    np.testing.assert_allclose(before, expected_before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after, expected_after, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", [r for r in WEIGHT_SWAPPING + DIRECT if r != "pepita"])
def test_every_rule_trains_a_residual_network_with_batch_norm(rule):
    """ResNet-8 (one basic block a stage, option-A shortcuts, batch norm) on 8×8 images: every weighted layer
    gets a finite update that is not zero (pepita refuses the residual graph: test_refusals_...)."""
    from bpfree.models import resnet

    net = bpfree.convert(resnet(8, input_shape=(8, 8, 3), classes=4, seed=1), rule, seed=1)
    net.compile()
    x = RNG.normal(size=(6, 8, 8, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(6) % 4]
    grads = dict(zip((v.path for v in net.trainable_variables), net.rule_gradients(x, y)))
    for layer in net.weighted_layers:
        g = np.asarray(grads[layer.kernel.path])
        assert np.all(np.isfinite(g)) and np.any(g != 0), (rule, layer.name)
