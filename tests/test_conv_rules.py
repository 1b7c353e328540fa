"""Convolutional networks under every conv-capable rule: one SGD(lr = 1) step against the rule's equations
written in numpy (float64, `numpy_reference`: 'same' convolution, its transposed convolution and kernel
gradient, max/average pooling and their backward passes, no TensorFlow), every variable of the model
checked; the defining properties of uSF, KP, sDFA and PEPITA on convolutions; and saving/loading in a
fresh process."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import bpfree
from bpfree import rules

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fresh_process import fresh_env
from numpy_reference import (
    Conv, Dense, Net, avg_pool, avg_pool_backward, avg_pool_same, avg_pool_same_backward, conv2d,
    conv2d_input_grad, conv2d_kernel_grad, hash_uniform, max_pool, max_pool_backward, softmax, softmax_vjp)

N, OUT = 4, 3
CONV_RULES = rules.convolutional_names()
DIRECT = ("dfa", "sdfa", "drtp", "cce", "mse")
FA_FAMILY = ("bp", "fa", "kp", "usf", "frsf", "brsf")
# {conv rule: reason} left out of the reconstruction step.
NO_RECONSTRUCTION = {"drtp": "drtp projects the one-hot target, so it refuses reconstruction problems"}

# name: (arch string, input shape, the same network in numpy_reference's terms)
ARCHS = {
    # 'same' conv, max pool, a stride-2 conv with odd total padding (the extra row at the bottom), dense.
    "maxpool": ("conv3k3-pool2-conv4k3s2-5", (8, 8, 2),
                [Conv(3, 3, 1, [("max", 2)]), Conv(4, 3, 2), Dense(5)]),
    # average pooling that drops a row and a column (5 → 2), an even kernel (pad 0 above, 1 below), fc.
    "avgpool": ("conv2k3-avgpool2-conv3k2-pool2-fc4", (5, 5, 2),
                [Conv(2, 3, 1, [("average", 2)]), Conv(3, 2, 1, [("max", 2)]), Dense(4)]),
    # the output layer reads a pooled conv block directly (pepita's output_error "auto" is "first" there).
    "readout": ("conv3k3-pool2-conv2k3s2", (8, 8, 2), [Conv(3, 3, 1, [("max", 2)]), Conv(2, 3, 2)]),
}


# ------------------------------------------------------------------------------- the numpy reference itself
def test_numpy_conv_reference_same_padding_by_hand():
    """H = 4, k = 3, s = 2: out = 2, total pad 1, all of it below:
    out_0 = (x_0, x_1, x_2) · w, out_1 = (x_2, x_3) · (w_0, w_1)."""
    x = np.arange(1.0, 5.0).reshape(1, 4, 1, 1)
    w = np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1, 1)
    w = np.concatenate([np.zeros_like(w), w, np.zeros_like(w)], axis=1)  # 3×3, only the centre column
    out = conv2d(x, w, 2)
    np.testing.assert_array_equal(out.ravel(), [1 + 20 + 300, 3 + 40])
    # H = 5, k = 3, s = 1: pad 1 above and below.
    x5 = np.arange(1.0, 6.0).reshape(1, 5, 1, 1)
    np.testing.assert_array_equal(conv2d(x5, w, 1).ravel(), [0 + 10 + 200, 1 + 20 + 300, 2 + 30 + 400,
                                                              3 + 40 + 500, 4 + 50 + 0])
    # pools: 'valid', window = stride; 'same' average pooling counts real entries only.
    m = np.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(max_pool(m, 2).ravel(), [6, 8, 16, 18])
    np.testing.assert_array_equal(avg_pool(m, 2).ravel(), [3, 5, 13, 15])
    # [[0, 1, 2], [5, 6, 7], [10, 11, 12]]: cells {0, 1, 5, 6}, {2, 7}, {10, 11}, {12}
    np.testing.assert_array_equal(avg_pool_same(m[:, :3, :3], 2).ravel(), [3, 4.5, 10.5, 12])


@pytest.mark.parametrize("shape,k,s", [((7, 6, 2), 3, 2), ((4, 4, 3), 2, 1), ((5, 5, 1), 3, 3), ((3, 3, 2), 4, 1)])
def test_numpy_conv_reference_vjps_are_adjoint(shape, k, s):
    """⟨conv(x, W), δ⟩ = ⟨x, input_grad(δ, W)⟩ = ⟨W, kernel_grad(x, δ)⟩; pools likewise; a finite difference."""
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(2, *shape)), rng.normal(size=(k, k, shape[2], 3))
    d = rng.normal(size=conv2d(x, W, s).shape)
    inner = np.sum(conv2d(x, W, s) * d)
    np.testing.assert_allclose(np.sum(x * conv2d_input_grad(d, W, s, x.shape)), inner, rtol=1e-10)
    np.testing.assert_allclose(np.sum(W * conv2d_kernel_grad(x, d, s, k)), inner, rtol=1e-10)
    m = rng.normal(size=(2, *shape))
    for p in (2, 3):
        g = rng.normal(size=max_pool(m, p).shape)
        np.testing.assert_allclose(np.sum(m * avg_pool_backward(m.shape, p, g)), np.sum(avg_pool(m, p) * g))
        np.testing.assert_allclose(np.sum(m * max_pool_backward(m, p, g)), np.sum(max_pool(m, p) * g))
        eps = 1e-6 * rng.normal(size=m.shape)
        np.testing.assert_allclose(np.sum((max_pool(m + eps, p) - max_pool(m, p)) * g),
                                   np.sum(eps * max_pool_backward(m, p, g)), rtol=1e-6, atol=1e-12)
        g = rng.normal(size=avg_pool_same(m, p).shape)
        np.testing.assert_allclose(np.sum(m * avg_pool_same_backward(m.shape, p, g)), np.sum(avg_pool_same(m, p) * g))


# ------------------------------------------------------------------------------- models and batches
def conv_model(rule, use_bias=True, arch="maxpool", problem_type="classification", seed=3, **options):
    text, shape, _ = ARCHS[arch]
    model = bpfree.build_model(rule, text, shape, OUT, activation="tanh", use_bias=use_bias, seed=seed,
                               problem_type=problem_type, **options)
    rng = np.random.default_rng(7)
    for layer in model.weighted_layers:  # non-zero biases, so that a wrong bias path shows
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.2, size=layer.bias.shape).astype("float32"))
    return model


def conv_batch(arch="maxpool", problem_type="classification", seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(N, *ARCHS[arch][1])).astype("float32")
    if problem_type == "classification":
        y = keras.utils.to_categorical([0, 2, 1, 2][:N], OUT).astype("float32")
    else:
        y = rng.uniform(-0.9, 0.9, size=(N, OUT)).astype("float32")
    return x, y


def f64(v):
    return np.array(v, dtype=np.float64)


# ------------------------------------------------------------------------------- the rules' equations
def output_error(z, y, problem_type, w):
    """e = ∂L/∂z of the mean (sample-weighted) loss: softmax + CE, or tanh + MSE."""
    if problem_type == "classification":
        return (softmax(z) - y) * w[:, None] / len(z)
    out = np.tanh(z)
    return 2 * (out - y) * (1 - out**2) * w[:, None] / (len(z) * y.shape[1])


def sign_scale(shape):
    """√(2/(fan_in + fan_out)), Glorot's fans: k·k·C_in and k·k·C_out for a conv kernel."""
    receptive = int(np.prod(shape[:-2]))
    return np.sqrt(2.0 / (receptive * shape[-2] + receptive * shape[-1]))


def backward_kernels(rule, model, Ws):
    """{l (0-based, ≥ 1): the kernel the error goes down through at layer l}, from the weights before the step."""
    Bs = {}
    for l in range(1, len(Ws)):
        W, layer = Ws[l], model.weighted_layers[l]
        if rule == "bp":
            Bs[l] = W
        elif rule in ("fa", "kp"):
            Bs[l] = f64(layer.feedback)
        elif rule == "usf":
            Bs[l] = np.sign(W) * sign_scale(W.shape)
        elif rule == "frsf":
            Bs[l] = np.abs(f64(layer.feedback)) * np.sign(W)
        elif rule == "brsf":
            step = int(layer.feedback_step)
            R = np.sqrt(3) * sign_scale(W.shape) * (2 * hash_uniform(W.shape, layer.feedback_seed, step) - 1)
            np.testing.assert_allclose(R, f64(layer.random_magnitudes(step)), rtol=1e-6, atol=1e-7)
            Bs[l] = np.abs(R) * np.sign(W)
        assert Bs[l].shape == W.shape, (rule, l)
    return Bs


def direct_signal(rule, p, e, y, problem_type):
    """What reaches p_l = h_l B_l: ∂J/∂p_l."""
    n, d = y.shape
    if rule == "dfa":
        return e
    if rule == "drtp":
        return y / n
    if rule == "sdfa":
        return np.sign(e) / n
    if rule == "cce" and problem_type == "classification":
        return (softmax(p) - y) / n
    if problem_type == "classification":  # mse: MSE(softmax(p), y)
        q = softmax(p)
        return softmax_vjp(q, 2 * (q - y) / (n * d))
    q = np.tanh(p)  # mse and cce→mse for reconstruction: MSE(tanh(p), y)
    return 2 * (q - y) * (1 - q**2) / (n * d)


def expected_updates(rule, model, blocks, params, x, y, problem_type="classification", sample_weight=None):
    """{variable path: its change after one SGD(lr = 1) step}, every trainable variable of the model."""
    net = Net(blocks, params)
    Ws = [W for W, _ in params]
    L = len(blocks)
    cache, z = net.forward(x)
    w = np.ones(len(x)) if sample_weight is None else sample_weight
    e = output_error(z, y, problem_type, w)
    layers = model.weighted_layers
    grads = [None] * (L + 1)  # (∂/∂W_l, ∂/∂b_l)
    extra = {}  # other trainable variables: {path: change}
    inputs = [c["input"] for c in cache] + [cache[-1]["out"]]

    if rule in FA_FAMILY:
        Bs = backward_kernels(rule, model, Ws)
        delta = e
        grads[L] = net.kernel_grads(L, inputs[L], delta)
        for l in reversed(range(L)):
            g = net.input_grad(l + 1, Bs[l + 1], delta, cache[l]["out"].shape)
            delta = net.delta(l, cache[l], g)
            grads[l] = net.kernel_grads(l, inputs[l], delta)
        if rule == "kp":
            decay = model.rule.decay
            for l in range(1, L + 1):
                extra[layers[l].feedback.path] = -(grads[l][0] + decay * Bs[l])
            grads = [(gW + decay * W, gb) for (gW, gb), W in zip(grads, Ws)]
    elif rule in DIRECT:
        pool = model.rule.projection_pool
        for l in range(L):
            B = f64(model.projections[l].feedback)
            # project_before_pool: B_l projects f(a_l), the map before the block's poolings
            unpooled = getattr(model.rule, "project_before_pool", False) and getattr(blocks[l], "pools", ())
            h = cache[l]["f"] if unpooled else cache[l]["out"]
            pooled = isinstance(blocks[l], Conv) and pool > 1
            hp = avg_pool_same(h, pool) if pooled else h
            assert B.shape == (hp[0].size, OUT), (l, B.shape, hp.shape)
            p = hp.reshape(len(hp), -1) @ B
            g = direct_signal(rule, p, e, y, problem_type) @ B.T
            g = avg_pool_same_backward(h.shape, pool, g.reshape(hp.shape)) if pooled else g
            delta = g.reshape(h.shape) * (1 - cache[l]["f"] ** 2) if unpooled else net.delta(l, cache[l], g)
            grads[l] = net.kernel_grads(l, inputs[l], delta)
        grads[L] = net.kernel_grads(L, inputs[L], e)
    elif rule == "pepita":
        F = f64(model.rule_layers[0].feedback)
        assert F.shape == (x[0].size, OUT)
        e_n = e * len(x)  # N ∂L/∂z
        x_err = x + (e_n @ F.T).reshape(x.shape)
        cache_err, z_err = net.forward(x_err)
        inputs_err = [x_err] + [c["out"] for c in cache_err]
        for l in range(L):
            # the activity difference before any pooling (f(a_l) − f(a_lᵉʳʳ)), as the error of a_l
            delta = (cache[l]["f"] - cache_err[l]["f"]) / len(x)
            if isinstance(blocks[l], Conv) and model.rule.conv_update == "official":
                delta = -delta / (len(x) * delta.shape[1] * delta.shape[2])  # the authors' sign, ÷ N·P more
            grads[l] = net.kernel_grads(l, inputs_err[l], delta)
        first = {"auto": isinstance(blocks[-1], Conv), "first": True, "modulated": False}[model.rule.output_error]
        e_top = e if first else output_error(z_err, y, problem_type, w)
        grads[L] = net.kernel_grads(L, inputs_err[L], e_top)
    else:
        pytest.fail(f"no numpy reference for the conv rule {rule!r}: add its equations to this test")

    want = dict(extra)
    for layer, (gW, gb) in zip(layers, grads):
        want[layer.kernel.path] = -gW
        if layer.bias is not None:
            want[layer.bias.path] = -gb
    return want


def one_step(rule, use_bias=True, arch="maxpool", problem_type="classification", sample_weight=None,
             steps_before=0, jit=False, graph=False, **options):
    """(got, want, before): {path: change} of every variable of the model after one SGD(lr = 1) step."""
    model = conv_model(rule, use_bias, arch, problem_type, **options)
    # eager (no tracing: 3× faster for one step) unless XLA or graph mode is what is tested
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit, run_eagerly=not (jit or graph))
    for k in range(steps_before):  # brsf: a draw later in the sequence
        model.train_on_batch(*conv_batch(arch, problem_type, seed=10 + k))
    x, y = conv_batch(arch, problem_type)
    params = [(f64(l.kernel), f64(l.bias) if l.bias is not None else np.zeros(l.kernel.shape[-1]))
              for l in model.weighted_layers]
    before = {v.path: f64(v) for v in model.weights}
    assert len(before) == len(model.weights), "variable paths are not unique"
    want = expected_updates(rule, model, ARCHS[arch][2], params, x.astype(np.float64), y.astype(np.float64),
                            problem_type, None if sample_weight is None else sample_weight.astype(np.float64))
    trainable = {v.path for v in model.trainable_weights}
    assert set(want) == trainable, f"trainable variables without an expected update: {trainable - set(want)}"
    for v in model.non_trainable_weights:  # fixed feedback, projections, F: unchanged; brsf's counter + 1
        want[v.path] = np.ones(()) if v.path.endswith("feedback_step") else np.zeros(v.shape)
    model.train_on_batch(x, y, sample_weight=sample_weight)
    got = {v.path: f64(v) - before[v.path] for v in model.weights}
    return got, want, model


def assert_step(got, want, model):
    kernels = {layer.kernel.path for layer in model.weighted_layers}
    for path in sorted(want):
        if path in kernels:
            assert np.abs(want[path]).max() > 1e-4, f"{path}: a vanishing update tests nothing"
        np.testing.assert_allclose(got[path], want[path], rtol=1e-5, atol=1e-6, err_msg=path)


# ------------------------------------------------------------------------------- one step, every rule
def test_the_conv_rules_are_the_ones_this_file_knows():
    """A new conv rule must come with its equations here (expected_updates fails for it otherwise)."""
    assert set(CONV_RULES) >= {"bp", "pepita", *FA_FAMILY, *DIRECT}
    assert not set(CONV_RULES) - {"pepita", *FA_FAMILY, *DIRECT}, "add the new rule's equations to expected_updates"
    assert set(NO_RECONSTRUCTION) <= set(CONV_RULES)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("rule", CONV_RULES)
def test_one_step_matches_the_equations(rule, use_bias):
    assert_step(*one_step(rule, use_bias, **({"f_scale": 1.0} if rule == "pepita" else {})))


@pytest.mark.parametrize("rule", CONV_RULES)
def test_one_step_with_average_pooling_and_an_even_kernel(rule):
    assert_step(*one_step(rule, True, arch="avgpool", **({"f_scale": 1.0} if rule == "pepita" else {})))


@pytest.mark.parametrize("rule", [r for r in CONV_RULES if r not in NO_RECONSTRUCTION])
def test_one_step_on_a_reconstruction_problem(rule):
    assert_step(*one_step(rule, True, problem_type="reconstruction",
                          **({"f_scale": 1.0} if rule == "pepita" else {})))


@pytest.mark.parametrize("pool", [2, 3])
@pytest.mark.parametrize("rule", [r for r in CONV_RULES if r in DIRECT])
def test_projection_pool(rule, pool):
    """B_l of a conv block has ⌈H/k⌉·⌈W/k⌉·C rows ('same' average pooling, padding not counted: k = 3 on
    4×4 and 2×2 maps pads); dense layers are projected whole. expected_updates checks the shapes too."""
    got, want, model = one_step(rule, True, projection_pool=pool)
    assert [tuple(p.feedback.shape) for p in model.projections] == [(2 * 2 * 3, OUT), (1 * 1 * 4, OUT), (5, OUT)]
    assert_step(got, want, model)


def test_kp_with_a_large_decay_brsf_later_in_its_sequence_and_sample_weights():
    assert_step(*one_step("kp", True, decay=0.05))
    assert_step(*one_step("kp", False, decay=0.0))
    assert_step(*one_step("brsf", True, steps_before=2))
    assert_step(*one_step("dfa", True, sample_weight=np.array([0.5, 2.0, 1.0, 1.5], "float32")))
    assert_step(*one_step("pepita", True, f_scale=1.0, output_error="first"))


@pytest.mark.parametrize("rule,options", [("brsf", {}), ("pepita", {"f_scale": 1.0}), ("dfa", {"projection_pool": 3})])
def test_one_step_under_xla(rule, options):
    """FeedbackAlignmentConv2D's custom gradient (brsf: with its counter-based draw), PEPITA's second pass,
    and the pooled projection, compiled by XLA."""
    assert_step(*one_step(rule, True, jit=True, **options))


# ------------------------------------------------------------------------------- defining properties
def test_usf_is_fa_with_b_set_to_sign_w_times_scale_at_every_step():
    usf, fa = conv_model("usf"), conv_model("fa")
    for m in (usf, fa):
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), run_eagerly=True)
    for k in range(3):
        for layer in fa.weighted_layers[1:]:
            W = f64(layer.kernel)
            layer.feedback.assign((np.sign(W) * sign_scale(W.shape)).astype("float32"))
        for m in (usf, fa):
            m.train_on_batch(*conv_batch(seed=k))
    for a, b in zip(usf.weighted_layers, fa.weighted_layers):
        np.testing.assert_allclose(f64(a.kernel), f64(b.kernel), rtol=1e-5, atol=1e-7, err_msg=a.kernel.path)
        np.testing.assert_allclose(f64(a.bias), f64(b.bias), rtol=1e-5, atol=1e-7, err_msg=a.bias.path)
    assert not np.allclose(f64(usf.weighted_layers[1].kernel), f64(conv_model("usf").weighted_layers[1].kernel))


def test_kp_conv_feedback_converges_to_the_forward_kernel():
    """Both get the same gradient, so B − W shrinks by exactly (1 − ηλ) a step, and cos(W, B) → 1 while the
    network learns (a decay too strong would pull W and B to 0 together, and alignment would mean nothing)."""
    lr, decay, epochs = 0.5, 0.02, 50  # 4 batches an epoch: B − W shrinks by 0.99²⁰⁰ ≈ 0.13
    model = conv_model("kp", decay=decay, trackers=("weight_alignment",))
    model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=False)
    conv = model.weighted_layers[1]
    assert len(conv.kernel.shape) == 4 and conv.feedback.trainable
    gap = f64(conv.feedback) - f64(conv.kernel)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, *ARCHS["maxpool"][1])).astype("float32")
    labels = (x[..., 0].mean(axis=(1, 2)) > 0).astype(int) + (x[:, :4, :, 1].mean(axis=(1, 2)) > 0).astype(int)
    y = keras.utils.to_categorical(labels, OUT).astype("float32")
    first = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(f64(conv.feedback) - f64(conv.kernel), (1 - lr * decay) ** 4 * gap, rtol=1e-4,
                               atol=1e-7)
    last = model.fit(x, y, batch_size=16, epochs=epochs - 1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(f64(conv.feedback) - f64(conv.kernel), (1 - lr * decay) ** (4 * epochs) * gap,
                               rtol=1e-3, atol=1e-6)
    assert last["loss"][-1] < 0.5 * first["loss"][0], (first["loss"], last["loss"][-1])
    for l in (2, 3, 4):  # the conv layer, the dense layer reading the flattened map, the output layer
        assert first[f"weight_alignment_{l}"][0] < 0.5 and last[f"weight_alignment_{l}"][-1] > 0.95, l
    assert float(bpfree.trackers.cosine(conv.kernel, conv.feedback)) > 0.95


def test_sdfa_conv_hidden_update_uses_only_the_sign_of_the_error():
    """Scaling the error (sample weights × 3) leaves sdfa's hidden conv updates unchanged; dfa's triple."""
    def hidden_updates(rule, w):
        model = conv_model(rule)
        model.compile(optimizer=keras.optimizers.SGD(1.0), run_eagerly=True)
        before = [f64(layer.kernel) for layer in model.weighted_layers[:-1]]
        model.train_on_batch(*conv_batch(), sample_weight=np.full(N, w, "float32"))
        return [f64(layer.kernel) - b for layer, b in zip(model.weighted_layers[:-1], before)]
    for a, b in zip(hidden_updates("sdfa", 3.0), hidden_updates("sdfa", 1.0)):
        assert np.abs(b).max() > 1e-4
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(hidden_updates("dfa", 3.0), hidden_updates("dfa", 1.0)):
        np.testing.assert_allclose(a, 3 * b, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------------------- saving
def test_every_conv_rule_saves_and_loads_in_a_fresh_process(tmp_path):
    """Trained one step, saved, loaded in a new process that imports only bpfree: the same predictions, and
    the same next SGD step (kp's B, frsf's R, brsf's draw counter, projections and F travel with it)."""
    x, y = conv_batch(seed=2)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    expected = {}
    for rule in CONV_RULES:
        model = conv_model(rule, seed=5)
        model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
        model.train_on_batch(*conv_batch(seed=9))
        model.save(tmp_path / f"{rule}.keras")
        first = np.asarray(model(x))
        model.train_on_batch(x, y)
        expected[rule] = (first, np.asarray(model(x)))
    script = f"""
import json
import numpy as np
import keras
import bpfree
x, y = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'y.npy')!r})
out = {{}}
for name in {list(CONV_RULES)!r}:
    model = keras.models.load_model({str(tmp_path)!r} + f"/{{name}}.keras")
    first = np.asarray(model(x)).tolist()
    model.run_eagerly = True
    model.train_on_batch(x, y)
    out[name] = [type(model).__name__, type(model.optimizer).__name__, first, np.asarray(model(x)).tolist()]
print("RESULT" + json.dumps(out))
"""
    env = fresh_env()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.split("RESULT", 1)[1])
    assert set(loaded) == set(CONV_RULES)
    for rule, (model_class, optimizer, first, after_step) in loaded.items():
        assert (model_class, optimizer) == ("Network", "SGD"), rule
        np.testing.assert_allclose(first, expected[rule][0], rtol=1e-5, atol=1e-6, err_msg=rule)
        np.testing.assert_allclose(after_step, expected[rule][1], rtol=1e-5, atol=1e-6, err_msg=f"{rule}, next step")


# ------------------------------------------------------------------------------- a bug found here
@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_brsf_redraws_the_output_layers_feedback_at_every_batch(arch):
    """The output layer was called without `training`, so its draw counter never moved: its B = |R_0| ⊙ sign(W)
    kept the same magnitudes for the whole run. Every layer now draws once per training step, and the
    bp_cosine tracker's replayed pass leaves the sequence as it is."""
    def trained(trackers):
        if arch == "conv":
            model, batches = conv_model("brsf", trackers=trackers), [conv_batch(seed=k) for k in range(3)]
        else:
            model = bpfree.build_model("brsf", "5-4", 6, OUT, seed=3, trackers=trackers)
            rng = np.random.default_rng(0)
            batches = [(rng.uniform(-1, 1, size=(N, 6)).astype("float32"), conv_batch()[1]) for _ in range(3)]
        model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
        for batch in batches:
            model.train_on_batch(*batch)
        return model
    model = trained(())
    assert [int(layer.feedback_step) for layer in model.weighted_layers[1:]] == [3] * (len(model.weighted_layers) - 1)
    tracked = trained(("bp_cosine",))
    for a, b in zip(model.weights, tracked.weights):
        np.testing.assert_allclose(f64(a), f64(b), rtol=1e-6, atol=1e-7, err_msg=a.path)


# ------------------------------------------------------------------------------- valid padding
LENET_VALID = "conv6k5v-pool2-conv16k5v-pool2-conv120k5v-84"  # biotorch's LeNet on 32×32 inputs


@pytest.mark.parametrize("rule", CONV_RULES)
def test_every_conv_rule_trains_biotorch_lenet_with_valid_convolutions(rule):
    """One step on the valid-padded LeNet (32 → 28 → 14 → 10 → 5 → 1): a finite loss that falls on its
    batch, block shapes as the padding says, feedback kernels and projections of the layers' real shapes."""
    options = {"projection_pool": 2} if rule in DIRECT else {}
    model = bpfree.build_model(rule, LENET_VALID, (32, 32, 1), 10, seed=0, **options)
    shapes, shape = [], (None, 32, 32, 1)
    for block in model.blocks[:3]:  # the conv blocks (the dense one reads the flattened map)
        shape = block.compute_output_shape(shape)
        shapes.append(tuple(shape[1:]))
    assert shapes == [(14, 14, 6), (5, 5, 16), (1, 1, 120)]
    assert [tuple(layer.kernel.shape) for layer in model.weighted_layers[:3]] == [(5, 5, 1, 6), (5, 5, 6, 16),
                                                                                  (5, 5, 16, 120)]
    for layer in model.weighted_layers:
        if getattr(layer, "feedback", None) is not None:
            assert tuple(layer.feedback.shape) == tuple(layer.kernel.shape)
    if rule in DIRECT:  # B_l: the block's map after a 2×2 'same' average pooling, flattened, onto 10 outputs
        assert [tuple(p.feedback.shape) for p in model.projections] == [(7 * 7 * 6, 10), (3 * 3 * 16, 10),
                                                                         (120, 10), (84, 10)]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(16, 32, 32, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 10, 10).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    kernels = [np.array(layer.kernel) for layer in model.weighted_layers]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [not np.array_equal(k, np.array(layer.kernel)) for k, layer in zip(kernels, model.weighted_layers)]
    assert all(changed), changed  # every layer, the convolutions included, received an update
    for _ in range(4):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    if rule not in ("drtp", "sdfa"):  # their updates follow the label or the error's sign only; 5 steps may not descend
        assert after < before, (before, after)


@pytest.mark.parametrize("stride,shape", [(1, (9, 9, 2)), (2, (10, 9, 2))])
def test_valid_feedback_conv_with_b_equal_to_w_gives_the_true_input_gradient(stride, shape):
    """The transposed convolution of a 'valid' FeedbackAlignmentConv2D: with B = W its ∂/∂x and ∂/∂W are
    those of Keras's own 'valid' Conv2D (autodiff)."""
    import tensorflow as tf

    from bpfree.layers import FeedbackAlignmentConv2D

    layer = FeedbackAlignmentConv2D(3, 4, strides=stride, padding="valid", feedback_seed=0)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, *shape)).astype("float32"))
    layer.build(x.shape)
    layer.feedback.assign(layer.kernel)
    plain = keras.layers.Conv2D(3, 4, strides=stride, padding="valid")
    plain.build(x.shape)
    plain.kernel.assign(layer.kernel)
    plain.bias.assign(layer.bias)
    grads = []
    for conv in (layer, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = conv(x)
            loss = tf.reduce_sum(out * tf.sin(tf.reshape(tf.range(tf.size(out), dtype=tf.float32), out.shape)))
        grads.append([np.asarray(g) for g in tape.gradient(loss, [x, conv.kernel])])
        assert tuple(out.shape[1:3]) == ((shape[0] - 4) // stride + 1, (shape[1] - 4) // stride + 1)
    for ours, keras_grad in zip(*grads):
        np.testing.assert_allclose(ours, keras_grad, rtol=1e-5, atol=1e-5)
    assert layer.get_config()["padding"] == "valid"


def test_a_valid_lenet_saves_and_loads_in_a_fresh_process(tmp_path):
    """Every conv rule's valid-padded LeNet, saved and loaded in a new process: 'valid' convolutions and
    the same predictions."""
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 32, 32, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for rule in CONV_RULES:
        model = bpfree.build_model(rule, LENET_VALID, (32, 32, 1), 10, seed=1,
                                   **({"projection_pool": 2} if rule in DIRECT else {}))
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        expected[rule] = np.asarray(model(x))
        model.save(tmp_path / f"{rule}.keras")
    script = f"""
import json
import numpy as np
import keras
import bpfree
x = np.load({str(tmp_path / 'x.npy')!r})
out = {{}}
for name in {list(CONV_RULES)!r}:
    model = keras.models.load_model({str(tmp_path)!r} + f"/{{name}}.keras")
    out[name] = [[layer.padding for layer in model.weighted_layers[:3]], np.asarray(model(x)).tolist()]
print("RESULT" + json.dumps(out))
"""
    env = fresh_env()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.split("RESULT", 1)[1])
    assert set(loaded) == set(CONV_RULES)
    for rule, (paddings, predictions) in loaded.items():
        assert paddings == ["valid"] * 3, rule
        np.testing.assert_allclose(predictions, expected[rule], rtol=1e-5, atol=1e-6, err_msg=rule)
