"""kp, usf, brsf, frsf and sdfa: one SGD(lr = 1) step on a tiny tanh network against numpy formulas
(float64), with kp's learned B. Shared by test_rules_feedback_alignment.py and test_rules_direct.py."""

import keras
import numpy as np

import bpfree

from numpy_reference import assert_updates, hash_uniform, softmax

NEW = ("kp", "usf", "brsf", "frsf", "sdfa")
N, DIMS = 8, (6, 5, 4, 3)


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
