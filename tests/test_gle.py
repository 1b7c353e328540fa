"""GLE: one Euler step against the seed's equations in numpy, the network's time loop against a numpy
simulation, MNIST-1D learning, save/load, a tiny grid search, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import build_model
from bpfree.models.gle import GLENetwork, build_gle_network, hidden_time_constants
from bpfree.layers.gle import (GLEConfig, GLEDense, GLEParams, GLEState, gle_forward_step, gle_step, gle_terms)

RTOL, ATOL = 1e-5, 1e-6


# ------------------------------------------------------------------------------- numpy reference
def np_phi(name, x):
    """(φ, φ') written out independently of the layer."""
    if name in ("linear", "identity"):
        return x, np.ones_like(x)
    if name == "tanh":
        return np.tanh(x), 1.0 / np.cosh(x) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return s, s * (1.0 - s)
    if name == "softplus":
        return np.log1p(np.exp(x)), 1.0 / (1.0 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0.0), (x > 0).astype(x.dtype)
    raise AssertionError(name)


def np_step(W, b, tau_m, tau_r, dt, gamma, act, prospective, u, v, r_prime, r_in, e_in):
    """The seed's GLEDynamics.__call__ with torch's Linear (weight = Wᵀ), in float64."""
    eps = e_in * r_prime
    s = r_in @ W + b
    if prospective:
        v_dot = (eps - v) / tau_r
        v_new = v + dt * v_dot
        e_hat = v + tau_m * v_dot
    else:
        v_new = e_hat = eps
    u_dot = (s + gamma * e_hat - u) / tau_m
    u_new = u + dt * u_dot
    u_pro = u + tau_r * u_dot
    r, rp = np_phi(act, u_pro)
    n = r_in.shape[0]
    grad_w = -np.einsum("ni,nj->ij", r_in, e_hat) / n  # −mean over the batch of r_in ⊗ ê
    return dict(eps=eps, s=s, e_hat=e_hat, u_dot=u_dot, u=u_new, v=v_new, u_pro=u_pro, r=r, r_prime=rp,
                e_bottom=e_hat @ W.T, grad_w=grad_w, grad_b=-e_hat.mean(0), grad_tau=(e_hat * u_dot).mean(0))


def random_case(rng, n=5, d_in=4, d_out=3, dt=0.1):
    f = lambda *shape: rng.normal(size=shape)  # noqa: E731
    return dict(W=f(d_in, d_out) * 0.5, b=f(d_out) * 0.1, tau_m=rng.uniform(dt, 1.0, d_out),
                tau_r=rng.uniform(dt, 1.0, d_out), u=f(n, d_out), v=f(n, d_out), r=f(n, d_out),
                r_prime=rng.uniform(0.1, 1.0, (n, d_out)), e_bottom=f(n, d_in), r_in=f(n, d_in), e_in=f(n, d_out))


def f32(x):
    return tf.constant(np.asarray(x, "float32"))


@pytest.mark.parametrize("act", ["linear", "tanh", "softplus", "relu", "sigmoid"])
@pytest.mark.parametrize("prospective", [True, False])
def test_one_euler_step_matches_the_seed_equations(act, prospective):
    c = random_case(np.random.default_rng(hash((act, prospective)) % 2**32))
    c64 = {k: np.asarray(np.float32(v), "float64") for k, v in c.items()}  # the same float32 inputs
    dt, gamma = 0.1, 0.3
    ref = np_step(c64["W"], c64["b"], c64["tau_m"], c64["tau_r"], dt, gamma, act, prospective, c64["u"], c64["v"],
                  c64["r_prime"], c64["r_in"], c64["e_in"])
    params = GLEParams(f32(c["W"]), f32(c["b"]), f32(c["tau_m"]), f32(c["tau_r"]))
    state = GLEState(f32(c["u"]), f32(c["v"]), f32(c["r"]), f32(c["r_prime"]), f32(c["e_bottom"]))
    config = GLEConfig(dt=dt, gamma=gamma, activation=act, prospective=prospective, learn_tau=True)
    t = gle_terms(params, state, f32(c["r_in"]), f32(c["e_in"]), config)
    new, grads = gle_step(params, state, f32(c["r_in"]), f32(c["e_in"]), config)
    for name, got in (("eps", t.eps), ("s", t.s), ("e_hat", t.e_hat), ("u_dot", t.u_dot), ("u_pro", t.u_prospective),
                      ("u", new.u), ("v", new.v), ("r", new.r), ("r_prime", new.r_prime), ("e_bottom", new.e_bottom),
                      ("grad_w", grads.kernel), ("grad_b", grads.bias), ("grad_tau", grads.tau_m)):
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=RTOL, atol=ATOL, err_msg=name)


def test_layer_step_and_sgd_update_follow_the_plasticity_rule():
    """GLEDense wires the same step to its variables; SGD(lr) then moves W by +lr · mean(r_in ⊗ ê)."""
    rng = np.random.default_rng(3)
    c = random_case(rng, n=6, d_in=4, d_out=3)
    layer = GLEDense(3, tau_m=list(c["tau_m"]), tau_r=list(c["tau_r"]), dt=0.1, gamma=0.2, activation="tanh",
                     learn_tau=True, tau_m_min=0.1, state_batch_size=6)
    layer.build((6, 4))
    layer.kernel.assign(c["W"].astype("float32"))
    layer.bias.assign(c["b"].astype("float32"))
    layer.assign_state(GLEState(*(f32(c[k]) for k in ("u", "v", "r", "r_prime", "e_bottom"))))
    c64 = {k: np.asarray(np.float32(v), "float64") for k, v in c.items()}
    ref = np_step(c64["W"], c64["b"], c64["tau_m"], c64["tau_r"], 0.1, 0.2, "tanh", True, c64["u"], c64["v"],
                  c64["r_prime"], c64["r_in"], c64["e_in"])
    new, grads = layer.step(c["r_in"].astype("float32"), c["e_in"].astype("float32"))
    np.testing.assert_allclose(new.r.numpy(), ref["r"], rtol=RTOL, atol=ATOL)
    pairs = layer.grads_and_vars(grads)
    assert [v.name for _, v in pairs] == ["kernel", "bias", "tau_m"]
    w0, lr = layer.kernel.numpy().astype("float64"), 0.05
    keras.optimizers.SGD(lr).apply([g for g, _ in pairs], [v for _, v in pairs])
    expected = w0 + lr * np.einsum("ni,nj->ij", c64["r_in"], ref["e_hat"]) / 6
    np.testing.assert_allclose(layer.kernel.numpy(), expected, rtol=RTOL, atol=ATOL)
    layer.assign_state(new)
    np.testing.assert_allclose(layer.state().u.numpy(), ref["u"], rtol=RTOL, atol=ATOL)


def test_le_prospective_voltage_is_the_instantaneous_drive_and_li_is_the_new_membrane():
    c = random_case(np.random.default_rng(7))
    state = GLEState(f32(c["u"]), f32(c["v"]), f32(c["r"]), f32(c["r_prime"]), f32(c["e_bottom"]))
    tau = f32(c["tau_m"])
    le = gle_terms(GLEParams(f32(c["W"]), f32(c["b"]), tau, tau), state, f32(c["r_in"]), f32(c["e_in"]),
                   GLEConfig(dt=0.1, gamma=0.5, prospective=False))
    np.testing.assert_allclose(le.u_prospective.numpy(), (le.s + 0.5 * le.e_hat).numpy(), rtol=RTOL, atol=ATOL)
    li = gle_terms(GLEParams(f32(c["W"]), f32(c["b"]), tau, f32(np.full(3, 0.1))), state, f32(c["r_in"]),
                   f32(c["e_in"]), GLEConfig(dt=0.1, gamma=0.5, prospective=True))
    np.testing.assert_allclose(li.u_prospective.numpy(), li.state.u.numpy(), rtol=RTOL, atol=ATOL)
    # LE with prospective errors: ê = v + τ (ε − v)/τ = ε.
    le2 = gle_terms(GLEParams(f32(c["W"]), f32(c["b"]), tau, tau), state, f32(c["r_in"]), f32(c["e_in"]),
                    GLEConfig(dt=0.1, prospective=True))
    np.testing.assert_allclose(le2.e_hat.numpy(), le2.eps.numpy(), rtol=RTOL, atol=ATOL)


def test_forward_step_is_differentiable_for_bptt():
    """gle_forward_step is plain TF: d(loss after 3 steps)/dW matches a central finite difference."""
    c = random_case(np.random.default_rng(11))
    W = tf.Variable(np.float64(c["W"]))
    config = GLEConfig(dt=0.1, activation="tanh")

    def unroll(kernel):
        p = GLEParams(kernel, tf.constant(c["b"]), tf.constant(c["tau_m"]), tf.constant(c["tau_r"]))
        s = GLEState(*(tf.zeros((5, 3), "float64"),) * 4, tf.zeros((5, 4), "float64"))
        for _ in range(3):
            s = gle_forward_step(p, s, tf.constant(c["r_in"]), config)
        return tf.reduce_sum(s.r ** 2)

    with tf.GradientTape() as tape:
        loss = unroll(W)
    grad = tape.gradient(loss, W).numpy()
    h, E = 1e-6, np.zeros_like(c["W"])
    E[1, 2] = h
    fd = (unroll(tf.constant(c["W"] + E)) - unroll(tf.constant(c["W"] - E))).numpy() / (2 * h)
    np.testing.assert_allclose(grad[1, 2], fd, rtol=1e-5)


# ------------------------------------------------------------------------------- the network
def np_network(Ws, bs, taus, acts, prospective, dt, beta, xs, y, lr, states):
    """The seed's GLEAbstractNet.forward + SGD(lr) every step, in float64 (CE output error)."""
    outs = []
    for x_t in xs:
        r_top = states[-1]["r"]
        p = np.exp(r_top - r_top.max(1, keepdims=True))
        e_top = beta * (y - p / p.sum(1, keepdims=True))
        outs.append(r_top)
        new = []
        for l in range(len(Ws)):
            r_in = x_t if l == 0 else states[l - 1]["r"]
            e_in = e_top if l == len(Ws) - 1 else states[l + 1]["e_bottom"]
            st = states[l]
            out = np_step(Ws[l], bs[l], taus[l][0], taus[l][1], dt, 0.0, acts[l], prospective, st["u"], st["v"],
                          st["r_prime"], r_in, e_in)
            new.append(out)
        for l, out in enumerate(new):  # SGD with the GLE gradients
            Ws[l] = Ws[l] - lr * out["grad_w"]
            bs[l] = bs[l] - lr * out["grad_b"]
        states = [{k: o[k] for k in ("u", "v", "r", "r_prime", "e_bottom")} for o in new]
    return np.mean(outs, axis=0), Ws, bs, states


def small_network(mode="gle", seed=0, batch=4, **kwargs):
    return build_gle_network("5-4", 2, 3, activation="tanh", input_activation="linear", mode=mode, dt=0.2, tau=1.0,
                             tau_profile="mixed", beta=1.0, input_mode="sequence", state_batch_size=batch, seed=seed,
                             **kwargs)


def test_network_time_loop_matches_a_numpy_simulation_of_the_seed_net():
    """Two batches of 6 steps: one-step delays, old output r in the error, joint commit, an SGD step every dt,
    and the state carried over to the next batch."""
    rng = np.random.default_rng(5)
    model = small_network()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    xs = rng.normal(size=(2, 4, 6, 2)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 4), 3).astype("float32")
    Ws = [l.kernel.numpy().astype("float64") for l in model.gle_layers]
    bs = [l.bias.numpy().astype("float64") for l in model.gle_layers]
    taus = [(l.tau_m.numpy().astype("float64"), l.tau_r.numpy().astype("float64")) for l in model.gle_layers]
    acts = [l.activation for l in model.gle_layers]
    states = [{k: np.zeros((4, d)) for k, d in (("u", l.units), ("v", l.units), ("r", l.units),
                                                 ("r_prime", l.units), ("e_bottom", l.input_dim))}
              for l in model.gle_layers]
    for x in xs:
        out, Ws, bs, states = np_network(Ws, bs, taus, acts, True, 0.2, 1.0, np.transpose(x, (1, 0, 2)), y, 0.1,
                                         states)
        logs = model.train_on_batch(x, y, return_dict=True)
        assert np.isfinite(logs["loss"])
    for l, layer in enumerate(model.gle_layers):
        np.testing.assert_allclose(layer.kernel.numpy(), Ws[l], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(layer.bias.numpy(), bs[l], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(layer.state().u.numpy(), states[l]["u"], rtol=RTOL, atol=ATOL)
        if l:  # the bottom layer's e_bottom goes nowhere and is not computed
            np.testing.assert_allclose(layer.state().e_bottom.numpy(), states[l]["e_bottom"], rtol=RTOL, atol=ATOL)
    assert model.optimizer.iterations.numpy() == 12


def test_learned_tau_is_clamped_at_its_minimum():
    layers = [GLEDense(4, tau_m=0.5, tau_r=0.1, dt=0.1, activation="tanh", learn_tau=True, tau_m_min=0.3,
                       state_batch_size=8, seed=0),
              GLEDense(2, tau_m=0.5, dt=0.1, learn_tau=True, tau_m_min=0.3, state_batch_size=8, seed=2)]
    model = GLENetwork(layers, 1, loss="mse")
    model.compile(optimizer=keras.optimizers.Adam(1.0))
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 30)).astype("float32"), rng.normal(size=(8, 2)).astype("float32"), batch_size=8,
              epochs=2, verbose=0)
    taus = np.concatenate([l.tau_m.numpy() for l in layers])
    assert taus.min() >= 0.3 - 1e-7 and not np.allclose(taus, 0.5)
    assert {v.name for v in model.trainable_variables} >= {"tau_m"}


def test_static_inputs_and_time_varying_targets_and_frozen_stateless_layers():
    rng = np.random.default_rng(1)
    model = build_model("gle", "8", 6, 3, seed=0, steps=12)  # vector inputs held for 12 steps
    model.compile(optimizer="adam", metrics=["error_rate"])
    logs = model.fit(rng.normal(size=(16, 6)).astype("float32"), rng.integers(0, 3, 16), batch_size=8, epochs=1,
                     verbose=0).history
    assert np.isfinite(logs["loss"][0]) and "error_rate" in logs
    frozen = GLEDense(3, tau_m=0.4, dt=0.2, stateful=False, trainable=False, state_batch_size=4, seed=0)
    top = GLEDense(2, tau_m=0.4, dt=0.2, state_batch_size=4, seed=1)
    net = GLENetwork([frozen, top], 1, loss="mse")
    net.compile(optimizer="sgd")
    w0 = frozen.kernel.numpy().copy()
    net.train_on_batch(rng.normal(size=(4, 7)).astype("float32"), rng.normal(size=(4, 7, 2)).astype("float32"))
    np.testing.assert_array_equal(frozen.kernel.numpy(), w0)
    assert np.all(frozen.state().u.numpy() == 0) and np.any(top.state().u.numpy() != 0)
    assert [v.name for v in net.trainable_variables] == ["kernel", "bias"]


def test_save_load_round_trip_keeps_predictions_state_and_optimizer(tmp_path):
    from bpfree.models.gle_mnist1d import static_lagnet_mlp

    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 9)).astype("float32")
    y = rng.integers(0, 10, 4)
    for model in (small_network(batch=4), static_lagnet_mlp(batch_size=4, hidden_size=6)):
        model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["error_rate"])
        xx = x[:, :, None].repeat(model.input_dim, 2)
        yy = keras.utils.to_categorical(y % model.output_dim, model.output_dim)
        model.train_on_batch(xx, yy)
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        assert isinstance(loaded, GLENetwork)
        np.testing.assert_array_equal(loaded.predict(xx, verbose=0), model.predict(xx, verbose=0))
        for a, b in zip(model.weights, loaded.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
        assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 9
        model.train_on_batch(xx, yy)
        loaded.train_on_batch(xx, yy)  # resumes identically
        for a, b in zip(model.weights, loaded.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_simulate_returns_the_trajectory_and_learns_like_train_step():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 7, 2)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 4), 3).astype("float32")
    a, b = small_network(seed=3), small_network(seed=3)
    for m in (a, b):
        m.compile(optimizer=keras.optimizers.SGD(0.1))
    out = a.simulate(x)
    assert out["outputs"].shape == (4, 7, 3) and out["losses"].shape == (7,)
    np.testing.assert_allclose(out["outputs"].numpy().mean(1), a.predict(x, verbose=0), rtol=RTOL, atol=ATOL)
    learned = a.simulate(x, y, learn=True)
    logs = b.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(learned["losses"].numpy().mean(), logs["loss"], rtol=RTOL)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=RTOL, atol=ATOL, err_msg=va.path)
    with pytest.raises(ValueError, match="needs targets"):
        a.simulate(x, learn=True)


def test_reset_state_resizes_and_zeroes():
    model = small_network(batch=4)
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(size=(4, 5, 2)).astype("float32"), rng.integers(0, 3, 4))
    model.reset_state(6)
    assert all(l.state().u.shape == (6, l.units) and np.all(l.state().u.numpy() == 0) for l in model.gle_layers)
    model.train_on_batch(rng.normal(size=(6, 5, 2)).astype("float32"), rng.integers(0, 3, 6))
    assert np.any(model.gle_layers[0].state().u.numpy() != 0)


def test_seed_architectures():
    from bpfree.models.gle_mnist1d import e2e_lag_mlp, static_lagnet_mlp

    e2e = e2e_lag_mlp()
    assert sum(int(np.prod(v.shape)) for v in e2e.trainable_variables) == 14956
    hidden = e2e.gle_layers[1]
    tm, tr = hidden.tau_m.numpy(), hidden.tau_r.numpy()
    np.testing.assert_allclose(tm[:18], 0.6) and np.testing.assert_allclose(tr[:36], 0.2)
    np.testing.assert_allclose(tm[18:], 1.2) and np.testing.assert_allclose(tr[36:], 1.2)
    assert [l.activation for l in e2e.gle_layers] == ["linear"] + ["tanh"] * 5 + ["linear"]
    np.testing.assert_allclose(e2e.gle_layers[-1].tau_r.numpy(), 1.2)
    lag = static_lagnet_mlp()
    assert sum(int(np.prod(v.shape)) for v in lag.trainable_variables) == 4930
    np.testing.assert_allclose(lag.gle_layers[0].tau_m.numpy(), np.round(np.linspace(0.2, 1.8, 10), 2), rtol=1e-6)
    np.testing.assert_array_equal(lag.gle_layers[2].kernel.numpy(), np.eye(10))
    assert hidden_time_constants(6, 1.0, 0.1, "lag")[1] == [0.1] * 6


@pytest.mark.slow
def test_mnist1d_learns_well_above_chance(tmp_path):
    """A short run on a subset (the static LagNet + LE-MLP, the faster learner of the two seed nets): test
    accuracy well above 10 % (chance); the records, the figure and the resumable model are written."""
    from bpfree import results
    from bpfree.experiments.mnist1d import MNIST1DConfig, run

    def config(epochs):
        return MNIST1DConfig(seed=0, epochs=epochs, static_lagnet=True, train_subset=2000, test_subset=500)

    lines = []
    data = run(config(3), str(tmp_path), log=lines.append)
    assert data["status"] == "completed" and len(data["history"]["test_acc"]) == 3
    assert data["hparams"]["optimizer"] == "torch_adam" and data["hparams"]["epsilon"] == 1e-8
    assert any("torch_adam (ε = 1e-08 added after the bias correction (PyTorch))" in line for line in lines)
    assert max(data["history"]["test_acc"]) > 25.0  # 37–40 % here
    frame = results.load(str(tmp_path))
    assert {"test_acc", "test_loss", "current_lr", "loss", "epoch_seconds"} <= set(frame.columns) and len(frame) == 3
    assert (tmp_path / "static_lagnet_seed0.png").stat().st_size > 0
    assert len(run(config(3), str(tmp_path), log=lambda *a: None)["history"]["test_acc"]) == 3  # not re-run
    resumed = run(config(4), str(tmp_path), log=lambda *a: None)  # loads the saved model, trains one more epoch
    assert len(resumed["history"]["test_acc"]) == 4 and resumed["status"] == "completed"


def test_gle_runs_in_a_tiny_grid_next_to_bp(tmp_path):
    from bpfree import results
    from bpfree.tuning import SearchConfig, SearchSpace, run_search

    space = {"algorithm": ["bp", "gle"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="loss", num_epochs=1)
    run_search(str(tmp_path), config, SearchSpace.create(space), log=lambda *a: None)
    frame = results.load(str(tmp_path))
    assert set(frame["algorithm"]) == {"bp", "gle"} and set(frame["status"]) == {"completed"}
    assert {"tau", "dt", "tau_profile"} <= set(frame.columns)  # the rule's own hparams are recorded
    gle_rows = frame[frame["algorithm"] == "gle"]
    assert np.isfinite(gle_rows["val_loss"]).all()
    with pytest.raises(ValueError, match="batchnorm"):
        run_search(str(tmp_path / "bad"), config, SearchSpace.create({**space, "batchnorm": [True]}),
                   log=lambda *a: None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tau_m=0.05), r"tau_m must be ≥ dt = 0.1"),
    (dict(tau_m=1.0, tau_r=[0.5, 0.05]), r"tau_r must be ≥ dt"),
    (dict(tau_r=[0.5]), r"list of 2 per-unit values"),
    (dict(mode="fast"), r"Unknown GLE mode 'fast'; valid: gle, le, bp, instantaneous"),
    (dict(activation="gelu"), r"Unknown GLE activation 'gelu'; valid: linear, identity, tanh"),
    (dict(mode="le", tau_m=1.0, tau_r=0.1), r"Mode 'le' sets tau_r = tau_m"),
    (dict(learn_tau=True, tau_m_min=0.01), r"tau_m_min 0.01 must be ≥ dt"),
])
def test_bad_layer_input_names_the_valid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GLEDense(2, dt=0.1, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batchnorm=True), "gle does not support batchnorm"),
    (dict(dropout=0.5), "gle does not support dropout"),
    (dict(trackers=["bp_cosine"]), "supports no trackers"),
    (dict(activation="elu"), r"Invalid activation 'elu' for gle; valid: linear"),
    (dict(tau=0.1), r"Invalid tau 0.1 for gle: .*≥ dt"),
    (dict(tau_profile="odd"), r"Unknown tau_profile 'odd'( for gle)?; valid: mixed, lag, le"),
    (dict(problem_type="regression"), "Unknown problem_type"),
])
def test_bad_model_input_names_the_valid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("gle", "8", 4, 2, **kwargs)


def test_bad_network_input():
    layer = GLEDense(2, tau_m=0.5, dt=0.1)
    with pytest.raises(ValueError, match="Unknown GLE loss 'hinge'; valid: ce, mse"):
        GLENetwork([layer], 1, loss="hinge")
    with pytest.raises(ValueError, match="Unknown input_mode 'video'; valid: sequence, static"):
        GLENetwork([GLEDense(2, tau_m=0.5, dt=0.1)], 1, input_mode="video")
    with pytest.raises(ValueError, match="one dt"):
        GLENetwork([GLEDense(2, tau_m=0.5, dt=0.1), GLEDense(2, tau_m=0.5, dt=0.2)], 1)
    net = small_network()
    net.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"expects x of shape \(batch, T, 2\)"):
        net.predict(np.zeros((4, 3, 5), "float32"), verbose=0)
    with pytest.raises(ValueError, match="computes its own loss"):
        net.compile(optimizer="adam", loss="mse")


@pytest.mark.slow
@pytest.mark.parametrize("static_lagnet, target", [(False, 90.0), (True, 89.0)])
def test_mnist1d_full_run_reaches_the_seeds_accuracy(tmp_path, static_lagnet, target):
    """The seed's full 150-epoch runs (≈10–15 min each on 2 cores): the E2E net ≥ 90 % (seed: 91.7 ± 0.8 %),
    the static LagNet + LE-MLP ≥ 89 % (seed: 90.9 ± 0.6 %), at the final epoch."""
    from bpfree.experiments.mnist1d import MNIST1DConfig, run

    data = run(MNIST1DConfig(seed=0, epochs=150, static_lagnet=static_lagnet), str(tmp_path), log=lambda *a: None)
    assert data["status"] == "completed" and data["history"]["test_acc"][-1] >= target
