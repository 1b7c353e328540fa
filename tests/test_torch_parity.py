"""The PyTorch pieces the GLE seed relies on, in Keras: Adam with ε after the bias correction
(`bpfree.optimizers.TorchAdam`), ReduceLROnPlateau's relative threshold (`bpfree.plateau`), and the CPU
generator's draws (`bpfree.torch_random`); each against numpy written from PyTorch's formulas."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bpfree import optimizers


# ------------------------------------------------------------------------------------ TorchAdam
def np_torch_adam(params, grads, lr, beta_1=0.9, beta_2=0.999, eps=1e-8, amsgrad=False):
    """torch.optim.Adam's single-tensor update (torch/optim/adam.py), float64: the parameters after each step."""
    theta = np.array(params, np.float64)
    m, v, v_max = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    out = []
    for step, g in enumerate(grads, start=1):
        m += (g - m) * (1 - beta_1)  # exp_avg.lerp_(grad, 1 - beta1)
        v = v * beta_2 + (1 - beta_2) * g * g
        step_size = lr / (1 - beta_1**step)
        bias_correction2_sqrt = math.sqrt(1 - beta_2**step)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            denom = np.sqrt(v_max) / bias_correction2_sqrt + eps
        else:
            denom = np.sqrt(v) / bias_correction2_sqrt + eps
        theta = theta - step_size * m / denom
        out.append(theta.copy())
    return out


def gradients(scale, steps=6):
    """Gradients of mixed signs; at scale 1e-8 √v̂ is comparable to ε, where the placements differ."""
    rng = np.random.default_rng(1)
    return [scale * rng.normal(size=3) for _ in range(steps)]


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_torch_adam_is_torch_optim_adams_update(amsgrad, mode):
    start = np.array([1.0, -2.0, 0.5])
    for scale in (1.0, 1e-8):
        grads = gradients(scale)
        want = np_torch_adam(start, grads, lr=1e-3, amsgrad=amsgrad)
        var = keras.Variable(start.astype("float32"))
        opt = optimizers.TorchAdam(learning_rate=1e-3, amsgrad=amsgrad)
        keras_var = keras.Variable(start.astype("float32"))
        keras_adam = keras.optimizers.Adam(1e-3, epsilon=1e-8, amsgrad=amsgrad)
        opt.build([var])
        keras_adam.build([keras_var])
        steps = [applying(opt, var), applying(keras_adam, keras_var)]
        if mode == "xla":
            steps = [tf.function(step, jit_compile=True) for step in steps]
        for g, w in zip(grads, want):
            for step in steps:
                step(tf.constant(g, "float32"))
            # the change from the start, to float32's precision of the parameters
            np.testing.assert_allclose(np.array(var) - start, w - start, rtol=2e-4, atol=1e-7, err_msg=f"{scale}")
        change_torch, change_keras = np.array(var) - start, np.array(keras_var) - start
        if scale < 1e-3:  # Keras's ε̂ = ε/√(1 − β2^t) ≈ 30 ε early on: visibly smaller steps
            assert np.all(np.abs(change_keras) < 0.8 * np.abs(change_torch))
        else:
            np.testing.assert_allclose(change_keras, change_torch, rtol=1e-3)


def test_torch_adam_config_lookup_and_description():
    opt = optimizers.get("torch_adam", 0.01, epsilon=1e-7, beta_2=0.99)
    assert isinstance(opt, optimizers.TorchAdam) and opt.epsilon == 1e-7 and opt.beta_2 == 0.99
    config = opt.get_config()
    assert config["epsilon"] == 1e-7 and config["name"] == "torch_adam"
    again = optimizers.TorchAdam.from_config(config)
    assert again.get_config() == config
    assert keras.saving.get_registered_object("bpfree>TorchAdam") is optimizers.TorchAdam
    assert optimizers.TorchAdam().epsilon == 1e-8  # PyTorch's default, not Keras's 1e-7
    assert optimizers.describe(optimizers.TorchAdam()) == \
        "torch_adam (ε = 1e-08 added after the bias correction (PyTorch))"
    assert optimizers.describe(keras.optimizers.Adam(epsilon=1e-8)) == \
        "adam (ε = 1e-08 added before the bias correction (Keras))"
    assert optimizers.describe(keras.optimizers.SGD(0.1, momentum=0.9)) == "SGD (momentum 0.9, no ε)"
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'; valid: adam, torch_adam, uncorrected_adam, sgd"):
        optimizers.get("adamw", 0.1)


def test_a_model_compiled_with_torch_adam_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizers.TorchAdam(1e-2), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is optimizers.TorchAdam and loaded.optimizer.epsilon == 1e-8
    loaded.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))


# ------------------------------------------------------------------------------------ plateau schedule
def np_torch_plateau(losses, lr, factor=0.5, patience=2, threshold=1e-4, min_lr=0.0, eps=1e-8):
    """torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0): the lr
    after each `step(loss)`."""
    best, bad, out = math.inf, 0, []
    for loss in losses:
        if loss < best * (1 - threshold):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            bad = 0
        out.append(lr)
    return out


def drive(callback, losses, lr):
    """The callback's learning rate after each epoch with these test losses."""
    import types

    optimizer = keras.optimizers.SGD(lr)
    callback.set_model(types.SimpleNamespace(optimizer=optimizer))
    callback.on_train_begin()
    out = []
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        out.append(float(np.array(optimizer.learning_rate)))
    return out


# Steps of 3e-4 on a loss near 20 (a plateau for the seed: 3 steps stay within 20 · 1e-4 of the best) and of
# 6e-5 near 0.5 (progress for the seed: each beats 0.5 · 1e-4), each long enough to cross the patience; then
# a drop and a flat tail. An absolute delta 2e-4 (≈ 1e-4 of a loss near 2) sees the opposite.
LOSSES = [20.0 - 3e-4 * k for k in range(5)] + [0.5 - 6e-5 * k for k in range(5)] + [0.3] * 5


def test_mnist1d_plateau_schedule_is_the_seeds_relative_threshold():
    from bpfree.experiments import mnist1d

    want = np_torch_plateau(LOSSES, 1e-3)
    assert want != np_torch_plateau(LOSSES, 1e-3, threshold=0.0)  # the threshold matters for these losses
    assert drive(mnist1d.make_plateau(), LOSSES, 1e-3) == pytest.approx(want, rel=1e-6)


def test_mnist1d_uses_the_seeds_adam():
    from bpfree.experiments.mnist1d import MNIST1DConfig, make_optimizer

    seeds = make_optimizer(MNIST1DConfig())
    assert type(seeds) is optimizers.TorchAdam and seeds.epsilon == 1e-8
    assert float(seeds.learning_rate) == pytest.approx(1e-3)
    keras_adam = make_optimizer(MNIST1DConfig(optimizer="adam"))
    assert type(keras_adam) is keras.optimizers.Adam and keras_adam.epsilon == 1e-8
    with pytest.raises(ValueError, match="Unknown --optimizer 'sgd'; valid: torch_adam, adam"):
        MNIST1DConfig(optimizer="sgd")


def test_relative_plateau_max_mode_config_and_bad_input():
    from bpfree.plateau import RelativeReduceLROnPlateau

    up = RelativeReduceLROnPlateau(monitor="val_loss", mode="max", patience=1, factor=0.5, threshold=0.1)
    # 1 → 1.05 is not 10 % better: one bad epoch reaches patience 1.
    assert drive(up, [1.0, 1.05, 1.2, 1.2], 1.0) == [1.0, 0.5, 0.5, 0.25]
    assert up.get_config() == {"monitor": "val_loss", "mode": "max", "factor": 0.5, "patience": 1,
                               "threshold": 0.1, "cooldown": 0, "min_lr": 0.0}
    with pytest.raises(ValueError, match="Unknown mode 'auto'; valid: min, max"):
        RelativeReduceLROnPlateau(mode="auto")
    with pytest.raises(ValueError, match="Invalid threshold -0.1: a number ≥ 0"):
        RelativeReduceLROnPlateau(threshold=-0.1)


# ------------------------------------------------------------------------------------ torch's generator
def test_torch_uniform_draws_what_torch_draws():
    from bpfree import torch_random

    # torch.manual_seed(0); torch.rand(5)  and  torch.manual_seed(42); torch.rand(3), as torch prints them.
    np.testing.assert_allclose(torch_random.uniform(0, 5), [0.4963, 0.7682, 0.0885, 0.1320, 0.3074], atol=5e-5)
    np.testing.assert_allclose(torch_random.uniform(42, 3), [0.8823, 0.9150, 0.3829], atol=5e-5)
    assert torch_random.uniform(0, 5).dtype == np.float32
    np.testing.assert_array_equal(torch_random.uniform(3, 4, -2.0, 2.0), torch_random.uniform(3, 4) * 4 - 2)
    assert torch_random.linear_bound(1) == pytest.approx(1.0) and torch_random.linear_bound(4) == pytest.approx(0.5)
    kernel = torch_random.linear_kernel(7, 2, 3)  # torch's weight (3, 2) is drawn row by row
    np.testing.assert_array_equal(kernel, torch_random.uniform(7, 6, -1 / math.sqrt(2), 1 / math.sqrt(2))
                                  .reshape(3, 2).T)


def applying(optimizer, variable):
    """One step of `optimizer` on `variable` from a gradient."""
    return lambda g: optimizer.apply([g], [variable])
