"""PEPITA and Forward-Forward test pieces: one SGD(lr = 1) step and its per-layer check, the tiny models
and the batch. Shared by test_rules_pepita.py, test_rules_forward_forward.py and test_rules_together.py."""

import keras
import numpy as np

from bpfree import build_model

N, DIMS = 4, (5, 8, 6, 3)


def sgd_step(model, x, y, jit=False, run_eagerly=False):
    """The change of every weighted layer's kernel and bias after one SGD(lr = 1) step."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), jit_compile=jit, run_eagerly=run_eagerly)
    layers = model.weighted_layers
    before = [(np.array(l.kernel, np.float64), None if l.bias is None else np.array(l.bias, np.float64))
              for l in layers]
    model.train_on_batch(x, y)
    return [(np.array(l.kernel, np.float64) - W, None if b is None else np.array(l.bias, np.float64) - b)
            for l, (W, b) in zip(layers, before)], before


def assert_updates(got, want, use_bias):
    for l, ((dW, db), (eW, eb)) in enumerate(zip(got, want), start=1):
        assert np.abs(eW).max() > 1e-4, f"layer {l}: a vanishing update tests nothing"
        np.testing.assert_allclose(dW, eW, rtol=1e-5, atol=1e-6, err_msg=f"kernel of layer {l}")
        if use_bias:
            np.testing.assert_allclose(db, eb, rtol=1e-5, atol=1e-6, err_msg=f"bias of layer {l}")
        else:
            assert db is None


def nonzero_biases(model, rng):
    for layer in model.weighted_layers:
        if layer.bias is not None:
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape).astype("float32"))

def pepita_model(use_bias=True, f_scale=1.0, output_error="modulated", seed=3):
    model = build_model("pepita", "-".join(map(str, DIMS[1:-1])), DIMS[0], DIMS[-1], activation="tanh",
                        use_bias=use_bias, seed=seed, f_scale=f_scale, output_error=output_error)
    nonzero_biases(model, np.random.default_rng(1))
    return model


def pepita_batch():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(N, DIMS[0])).astype("float32")
    y = keras.utils.to_categorical([0, 2, 1, 2], DIMS[-1]).astype("float32")
    return x, y


def ff_model(use_bias=True, threshold=2.0, seed=3, arch="8-6"):
    model = build_model("ff", arch, 5, 3, use_bias=use_bias, seed=seed, threshold=threshold)
    nonzero_biases(model, np.random.default_rng(1))
    return model


def trained_on_digits(algorithm, lr, epochs):
    """A 64-unit relu net of `algorithm` fitted on digits with Adam: (logs before, fit history, logs after)."""
    from bpfree import datasets

    x, y = datasets.load("digits", split="train")
    x, y = x.reshape(len(x), -1), keras.utils.to_categorical(y, 10).astype("float32")
    model = build_model(algorithm, "64", x.shape[1], 10, activation="relu", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(lr), metrics=["error_rate"])
    start = model.evaluate(x, y, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0).history
    return start, history, model.evaluate(x, y, verbose=0, return_dict=True)
