"""The BP/BPTT baselines the GLE seed compares its MNIST-1D results with (Fig. 8), as Keras models.

The seed keeps only their results (`results/mnist1d/baselines/mnist1d_{mlp,cnn,gru}[_super]_*.pkl`: 6001
training losses and 25 test points, i.e. the MNIST-1D package's `train_model` loop: 6000 Adam steps,
evaluation every 250); the networks are the MNIST-1D package's (`greydanus/mnist1d`,
`notebooks/models.py`), with PyTorch's default initialisation:

- ``mlp``: Linear(L→100) ReLU, h + ReLU(Linear(100→100) h), Linear(100→10)  (`MLPBase`);
- ``tcn``: Conv1d(1→25, k5, s2, pad 1) ReLU, 2 × Conv1d(25→25, k3, s2, pad 1) ReLU, flatten, Linear → 10
  (`ConvBase`; the flattened width follows L: 125 at L = 40, 1125 at L = 360);
- ``gru``: bidirectional GRU(1→6) over the L steps, all outputs flattened (2·6·L), Linear → 10
  (`GRUBase`; Keras's ``reset_after`` GRU is PyTorch's cell).

Training (`mnist1d.get_model_args` then): Adam lr 1e-2 (PyTorch's ε placement), batch 100, no weight
decay, cross-entropy on the logits, 6000 steps = 150 epochs of 4000 sequences, batches taken in order
(no shuffling), on the original length L = 40 or the supersampled L = 360 (`mnist1d` / `mnist1d_seq`,
raw values).
"""

import keras
import numpy as np

from bpfree import checks

BASELINES = ("mlp", "tcn", "gru")
LENGTHS = (40, 360)
LR = 1e-2


def _uniform(fan_in, seed):
    """PyTorch's default for Linear / Conv weights and biases: U(±1/√fan_in)."""
    bound = 1.0 / np.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


def _dense(units, fan_in, seed, **kwargs):
    return keras.layers.Dense(units, kernel_initializer=_uniform(fan_in, seed),
                              bias_initializer=_uniform(fan_in, seed + 1), **kwargs)


def _conv(filters, kernel, fan_in, seed):
    return keras.layers.Conv1D(filters, kernel, strides=2, activation="relu",
                               kernel_initializer=_uniform(fan_in * kernel, seed),
                               bias_initializer=_uniform(fan_in * kernel, seed + 1))


def build(name, length, seed=0, hidden=100, channels=25, gru_units=6):
    """The baseline `name` (module docstring) for sequences of `length`, a functional Keras model
    (input (batch, length), logits (batch, 10))."""
    checks.choice("baseline", name, BASELINES)
    checks.whole("length", length, lambda v: v >= 8, "an integer ≥ 8")
    x = inputs = keras.Input((length,))
    if name == "mlp":
        h = _dense(hidden, length, seed, activation="relu")(x)
        h = keras.layers.Add()([h, _dense(hidden, hidden, seed + 2, activation="relu")(h)])
        out = _dense(10, hidden, seed + 4)(h)
    elif name == "tcn":
        h = keras.layers.Reshape((length, 1))(x)
        for i, (fan_in, kernel) in enumerate(((1, 5), (channels, 3), (channels, 3))):
            h = keras.layers.ZeroPadding1D(1)(h)
            h = _conv(channels, kernel, fan_in, seed + 2 * i)(h)
        out = _dense(10, int(np.prod(h.shape[1:])), seed + 6)(keras.layers.Flatten()(h))
    else:
        h = keras.layers.Reshape((length, 1))(x)
        def gru(offset, **kwargs):
            return keras.layers.GRU(gru_units, kernel_initializer=_uniform(gru_units, seed + offset),
                                    recurrent_initializer=_uniform(gru_units, seed + offset + 1),
                                    bias_initializer=_uniform(gru_units, seed + offset + 2), reset_after=True,
                                    return_sequences=True, **kwargs)

        h = keras.layers.Bidirectional(gru(0), backward_layer=gru(3, go_backwards=True))(h)
        out = _dense(10, 2 * gru_units * length, seed + 6)(keras.layers.Flatten()(h))
    return keras.Model(inputs, out, name=f"{name}_{length}")
