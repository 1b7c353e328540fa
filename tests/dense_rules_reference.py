"""One SGD(lr = 1) step of bp, fa, dfa, drtp, cce and mse on a tiny tanh network against the rules'
equations written in numpy (float64): `run_one_step` returns (got ΔW, got Δb, expected ΔW, expected Δb)
for `numpy_reference.assert_updates`. Shared by test_rules_feedback_alignment.py and test_rules_direct.py."""

import keras
import numpy as np

from bpfree import build_model

from numpy_reference import softmax, softmax_vjp

N, DIMS = 4, (5, 8, 6, 3)


def expected_updates(rule, Ws, bs, Bs, x, y, problem_type, weight_decay=0.0):
    """ΔW_l = −h_{l−1}ᵀ δ_l, Δb_l = −Σ_n δ_l (SGD, lr = 1) as the rule's equations say."""
    hs = [x]
    for W, b in zip(Ws[:-1], bs[:-1]):
        hs.append(np.tanh(hs[-1] @ W + b))
    z = hs[-1] @ Ws[-1] + bs[-1]
    if problem_type == "classification":
        e = (softmax(z) - y) / N  # ∂ mean CE(softmax(z), y) / ∂z
    else:
        out = np.tanh(z)
        e = 2 * (out - y) * (1 - out**2) / (N * y.shape[1])  # ∂ mean MSE(tanh(z), y) / ∂z
    L = len(Ws) - 1
    deltas = [None] * L + [e]
    fprime = [1 - h**2 for h in hs[1:]]
    for l in reversed(range(L)):
        if rule == "bp":
            deltas[l] = (deltas[l + 1] @ Ws[l + 1].T) * fprime[l]
        elif rule == "fa":
            deltas[l] = (deltas[l + 1] @ Bs[l].T) * fprime[l]  # Bs[l] is the B of layer l + 2 (1-based)
        elif rule == "dfa":
            deltas[l] = (e @ Bs[l].T) * fprime[l]
        elif rule == "drtp":
            deltas[l] = (y @ Bs[l].T) * fprime[l] / N
        elif rule == "cce" and problem_type == "classification":
            g = (softmax(hs[l + 1] @ Bs[l]) - y) / N
            deltas[l] = (g @ Bs[l].T) * fprime[l]
        else:  # mse (and cce→mse for reconstruction): σ = the output activation
            p = hs[l + 1] @ Bs[l]
            if problem_type == "classification":
                q = softmax(p)
                g = softmax_vjp(q, 2 * (q - y) / (N * y.shape[1]))
            else:
                q = np.tanh(p)
                g = 2 * (q - y) * (1 - q**2) / (N * y.shape[1])
            deltas[l] = (g @ Bs[l].T) * fprime[l]
    dW = [-(h.T @ d) - 2 * weight_decay * W for h, d, W in zip(hs, deltas, Ws)]
    db = [-d.sum(axis=0) for d in deltas]
    return dW, db


def run_one_step(rule, use_bias, problem_type="classification", weight_decay=0.0, jit=False):
    rng = np.random.default_rng(1)
    out_dim = DIMS[-1] if problem_type == "classification" else DIMS[0]
    model = build_model(rule, "-".join(map(str, DIMS[1:-1])), DIMS[0], out_dim, activation="tanh",
                        use_bias=use_bias, problem_type=problem_type, weight_decay=weight_decay, seed=3)
    # Non-zero biases so that a wrong bias path shows.
    for layer in model.weighted_layers:
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit)
    x = rng.uniform(-1, 1, size=(N, DIMS[0])).astype("float32")
    if problem_type == "classification":
        y = keras.utils.to_categorical([0, 2, 1, 2], DIMS[-1]).astype("float32")
    else:
        y = x
    Ws = [np.array(l.kernel, dtype=np.float64) for l in model.weighted_layers]
    bs = [np.array(l.bias, dtype=np.float64) if use_bias else np.zeros(l.units) for l in model.weighted_layers]
    Bs = [np.array(b, dtype=np.float64) for b in model.feedback_matrices]
    model.train_on_batch(x, y)
    dW = [np.array(l.kernel, dtype=np.float64) - W for l, W in zip(model.weighted_layers, Ws)]
    db = [np.array(l.bias, dtype=np.float64) - b for l, b in zip(model.weighted_layers, bs)] if use_bias else None
    exp_dW, exp_db = expected_updates(rule, Ws, bs, Bs, x.astype(np.float64), y.astype(np.float64),
                                      problem_type, weight_decay)
    return dW, db, exp_dW, exp_db


def updates_with_transposed_output_kernel(rule):
    """({"bp": updates, rule: updates}) of one SGD step of a one-hidden-layer net, the rule's last
    feedback matrix set to the output kernel (B = W_out in our (units, outputs) convention; the paper's Bᵀ)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, 5)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 2, 1], 3).astype("float32")
    updates = {}
    for name in ("bp", rule):
        model = build_model(name, "7", 5, 3, seed=11)
        if name != "bp":
            model.feedback_matrices[-1].assign(model.output_layer.kernel)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
        before = [np.array(v) for v in model.trainable_variables]
        model.train_on_batch(x, y)
        updates[name] = [np.array(v) - b for v, b in zip(model.trainable_variables, before)]
    return updates
