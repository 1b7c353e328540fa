"""The seed's two MNIST-1D GLE networks (Fig. 8 of "Backpropagation through space, time and the brain";
seed `experiments/mnist1d/plastic_e2e.py` and `static_lagnet.py`), as `GLENetwork`s fed one scalar per dt.

- `e2e_lag_mlp`, the seed's `E2ELagMLPNet`: GLEDense 1→53 (identity φ), 5 × 53→53 (tanh), 53→10 (linear,
  τ_m = τ_r = 1.2). Hidden units 0–17: τ_m = 0.6, τ_r = dt; 18–35: τ_m = 1.2, τ_r = dt; 36–52:
  τ_m = τ_r = 1.2 (`hidden_time_constants`, profile "mixed"). dt 0.2, β 1, γ 0, prospective errors, CE.
- `static_lagnet_mlp`: fixed cascaded leaky integrators (1→10 all-ones, then three 10→10 identity
  layers, identity φ, τ_m = round(linspace(dt, 1.8, 10), 2), τ_r = dt; zero state every batch, no
  learning, no errors) under an LE-MLP 10→60→60→10 (tanh, linear out, τ_m = τ_r = 2.0, instantaneous
  errors).
"""

import keras
import numpy as np

from bpfree import checks, seeds
from bpfree.layers.gle import GLEDense
from bpfree.models.gle import GLENetwork, build_gle_network

MODELS = ("gle_e2e", "static_lagnet")


def e2e_lag_mlp(*, dt=0.2, tau=1.2, hidden_layers=6, hidden_size=53, seed=0, batch_size=100, **kwargs):
    """The seed's `E2ELagMLPNet` (module docstring) as a `GLENetwork`."""
    return build_gle_network("-".join([str(hidden_size)] * hidden_layers), 1, 10, activation="tanh",
                             input_activation="linear", mode="gle", dt=dt, tau=tau, tau_profile="mixed", gamma=0.0,
                             beta=1.0, loss="ce", input_mode="sequence", state_batch_size=batch_size, seed=seed,
                             name="gle_e2e", **kwargs)


def static_lagnet_mlp(*, dt=0.2, max_memory_tau=1.8, tau=2.0, hidden_size=60, seed=0, batch_size=100, **kwargs):
    """The seed's `GLELagNet` memory (fixed, reset every batch) under a `GLETDNN` LE-MLP, as one `GLENetwork`.

    The seed runs the memory as a separate network whose output at step t is its top layer's previous
    r, which the MLP's first layer reads at step t: exactly the next layer's r_in in one stack."""
    lag_tau = [float(v) for v in np.round(np.linspace(dt, max_memory_tau, 10), 2)]
    lag = dict(tau_m=lag_tau, tau_r=dt, dt=dt, activation="linear", mode="bp", stateful=False, trainable=False,
               state_batch_size=batch_size, bias_initializer="zeros")
    layers = [GLEDense(10, kernel_initializer="ones", name="lag_1", **lag)]
    layers += [GLEDense(10, kernel_initializer=keras.initializers.Identity(), name=f"lag_{i}", **lag)
               for i in (2, 3, 4)]
    mlp = dict(tau_m=tau, dt=dt, mode="le", gamma=0.0, state_batch_size=batch_size)
    layers += [GLEDense(hidden_size, activation="tanh", seed=seeds.gle_layer(seed, 0), name="mlp_1", **mlp),
               GLEDense(hidden_size, activation="tanh", seed=seeds.gle_layer(seed, 1), name="mlp_2", **mlp),
               GLEDense(10, activation="linear", seed=seeds.gle_layer(seed, 2), name="mlp_out", **mlp)]
    return GLENetwork(layers, 1, loss="ce", beta=1.0, input_mode="sequence", name="static_lagnet", **kwargs)


def build(model, seed, dt=0.2, batch_size=100):
    """`e2e_lag_mlp` ("gle_e2e") or `static_lagnet_mlp` ("static_lagnet")."""
    checks.choice("model", model, MODELS)
    return (e2e_lag_mlp if model == "gle_e2e" else static_lagnet_mlp)(dt=dt, seed=seed, batch_size=batch_size)
