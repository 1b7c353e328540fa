"""MNIST-1D with GLE, as in the seed's `experiments/mnist1d/plastic_e2e.py` and `static_lagnet.py` (Fig. 8).

    python -m bpfree.experiments.mnist1d --seed 0 [--epochs 150] [--static_lagnet] [--exp_dir data/mnist1d]

Each 360-step sample (MNIST-1D with final_seq_length 360, raw values) is fed one scalar per dt step,
with an Adam step at every dt step (40 batches × 360 = 14,400 updates per epoch); the prediction is
argmax Σ_t logits_t.

- default, `E2ELagMLPNet` (≈15k params): GLEDense 1→53 (identity φ), 5 × 53→53 (tanh), 53→10 (linear,
  τ_m = τ_r = 1.2). Hidden units 0–17: τ_m = 0.6, τ_r = dt; 18–35: τ_m = 1.2, τ_r = dt; 36–52:
  τ_m = τ_r = 1.2. dt 0.2, β 1, γ 0, prospective errors, CE. Seed's result: 91.7 ± 0.8 % at epoch 150.
- ``--static_lagnet``: fixed cascaded leaky integrators (1→10 all-ones, then three 10→10 identity
  layers, identity φ, τ_m = round(linspace(0.2, 1.8, 10), 2), τ_r = dt; zero state every batch, no
  learning, no errors) under an LE-MLP 10→60→60→10 (tanh, linear out, τ_m = τ_r = 2.0, instantaneous
  errors), ≈4.9k trainable params. Seed's result: 90.9 ± 0.6 %.

Both: Adam lr 5e-3 · 72/360 = 1e-3 (ε = 1e-8 as in PyTorch), batch 100 (test batch 1000),
ReduceLROnPlateau(factor 0.5) stepped on the **test** loss, as the seed does. PyTorch's patience 2
reduces after 3 epochs without improvement (num_bad_epochs > patience); Keras's reduces after
`patience` epochs (wait ≥ patience), so Keras patience 3 here; PyTorch's relative threshold 1e-4 is
approximated by Keras's absolute min_delta 2e-4 at the loss's scale (≈2).

Outputs in ``--exp_dir``: the execution record ``records/<model>/execution_<seed>.json`` (per epoch:
loss, error_rate, test_loss, test_acc, current_lr, epoch_seconds, epoch_cpu_seconds;
`bpfree.results.load(exp_dir)` reads it),
``<model>_seed<seed>.png`` (test accuracy against epoch) and ``<model>_seed<seed>.keras`` (the model
with its optimizer and dynamic state, for resuming), all written atomically after every epoch. Running
the same command again resumes an interrupted run from its last finished epoch (the plateau
counter restarts) and does nothing for a finished one.
"""

import os
import sys
import time

import numpy as np

from bpfree.experiments import common

MODELS = ("gle_e2e", "static_lagnet")
SAMPLE_LENGTH = 72  # the seed's "original length of MNIST-1D samples in arbitrary units"


def e2e_lag_mlp(*, dt=0.2, tau=1.2, hidden_layers=6, hidden_size=53, seed=0, batch_size=100, **kwargs):
    """The seed's `E2ELagMLPNet` (module docstring) as a `GLENetwork`."""
    from bpfree.models.gle import build_gle_network

    return build_gle_network("-".join([str(hidden_size)] * hidden_layers), 1, 10, activation="tanh",
                             input_activation="linear", mode="gle", dt=dt, tau=tau, tau_profile="mixed", gamma=0.0,
                             beta=1.0, loss="ce", input_mode="sequence", state_batch_size=batch_size, seed=seed,
                             name="gle_e2e", **kwargs)


def static_lagnet_mlp(*, dt=0.2, max_memory_tau=1.8, tau=2.0, hidden_size=60, seed=0, batch_size=100, **kwargs):
    """The seed's `GLELagNet` memory (fixed, reset every batch) under a `GLETDNN` LE-MLP, as one `GLENetwork`.

    The seed runs the memory as a separate network whose output at step t is its top layer's previous
    r, which the MLP's first layer reads at step t: exactly the next layer's r_in in one stack."""
    import keras

    from bpfree.models.gle import GLENetwork
    from bpfree.layers.gle import GLEDense

    lag_tau = [float(v) for v in np.round(np.linspace(dt, max_memory_tau, 10), 2)]
    lag = dict(tau_m=lag_tau, tau_r=dt, dt=dt, activation="linear", mode="bp", stateful=False, trainable=False,
               state_batch_size=batch_size, bias_initializer="zeros")
    layers = [GLEDense(10, kernel_initializer="ones", name="lag_1", **lag)]
    layers += [GLEDense(10, kernel_initializer=keras.initializers.Identity(), name=f"lag_{i}", **lag)
               for i in (2, 3, 4)]
    mlp = dict(tau_m=tau, dt=dt, mode="le", gamma=0.0, state_batch_size=batch_size)
    layers += [GLEDense(hidden_size, activation="tanh", seed=seed, name="mlp_1", **mlp),
               GLEDense(hidden_size, activation="tanh", seed=seed + 2, name="mlp_2", **mlp),
               GLEDense(10, activation="linear", seed=seed + 4, name="mlp_out", **mlp)]
    return GLENetwork(layers, 1, loss="ce", beta=1.0, input_mode="sequence", name="static_lagnet", **kwargs)


def build(model, seed, dt=0.2, batch_size=100):
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}; valid: {', '.join(MODELS)}.")
    return (e2e_lag_mlp if model == "gle_e2e" else static_lagnet_mlp)(dt=dt, seed=seed, batch_size=batch_size)


def load_data(steps_per_sample=360, subset=None, seed=0):
    """(x_train, y_train, x_test, y_test): raw MNIST-1D sequences (N, steps), integer labels.
    `subset` (train, test) takes stratified-free random subsets (for quick runs and tests)."""
    from bpfree import datasets

    if steps_per_sample != 360:
        raise ValueError(f"Only the embedded 360-step MNIST-1D is available; got steps_per_sample={steps_per_sample}.")
    x, y = datasets.load("mnist1d_seq", "train", scaler="identity")
    xt, yt = datasets.load("mnist1d_seq", "test", scaler="identity")
    if subset:
        rng = np.random.default_rng(seed)
        i, j = rng.permutation(len(x))[: subset[0]], rng.permutation(len(xt))[: subset[1]]
        x, y, xt, yt = x[i], y[i], xt[j], yt[j]
    return x, y, xt, yt


def plot_accuracy(history, path, title):
    plt = common.pyplot()
    acc = history.get("test_acc", [])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(acc) + 1), acc, marker=".")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    common.save_figure(fig, path)
    plt.close(fig)


def run(seed=0, epochs=150, static_lagnet=False, exp_dir="data/mnist1d", lr=5e-3 * SAMPLE_LENGTH / 360,
        batch_size=100, test_batch_size=1000, subset=None, log=print):
    """Trains (or resumes) one seed; returns the execution record's data."""
    import keras

    import bpfree.models.gle  # noqa: F401 - registers GLENetwork / GLEDense for load_model
    from bpfree import records

    model_name = MODELS[1] if static_lagnet else MODELS[0]
    for label, value in (("epochs", epochs), ("batch_size", batch_size), ("test_batch_size", test_batch_size)):
        if int(value) <= 0:
            raise ValueError(f"Invalid {label} {value!r}: must be positive.")
    if not lr > 0:
        raise ValueError(f"Invalid lr {lr!r}: must be > 0.")
    hparams = {"model": model_name, "epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size),
               "dt": 0.2, "subset": list(subset) if subset else None}
    record_path = records.execution_path(exp_dir, model_name, seed)
    model_path = os.path.join(exp_dir, f"{model_name}_seed{seed}.keras")
    figure_path = os.path.join(exp_dir, f"{model_name}_seed{seed}.png")

    x, y, xt, yt = load_data(subset=subset, seed=seed)
    y1, yt1 = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yt, 10)
    if os.path.exists(record_path) and os.path.exists(model_path):
        record = records.ExecutionRecord.resume(record_path)
        if record.status == "completed" and record.epochs_done >= epochs:
            log(f"{record_path}: already completed ({record.epochs_done} epochs).")
            return record.data
        model = keras.models.load_model(model_path)
        log(f"Resuming {model_name} seed {seed} after epoch {record.epochs_done}.")
    else:
        keras.utils.set_random_seed(seed)
        record = records.ExecutionRecord(exp_dir, model_name, seed, hparams, seed=seed)
        model = build(model_name, seed, batch_size=batch_size)
        model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-8), metrics=["error_rate"])
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    log(f"{model_name}: {n_params} trainable parameters, {len(x)} train / {len(xt)} test sequences of "
        f"{x.shape[1]} steps, {int(np.ceil(len(x) / batch_size)) * x.shape[1]} optimizer steps per epoch.")
    record.start(time.monotonic())

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            row = {"loss": logs.get("loss"), "error_rate": logs.get("error_rate"),
                   "test_loss": logs.get("val_loss"), "test_acc": 100.0 - logs.get("val_error_rate", np.nan),
                   "current_lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                   "epoch_seconds": time.perf_counter() - self.t0, "epoch_cpu_seconds": time.process_time() - self.c0}
            record.append_epoch(row, wall_clock=time.monotonic())
            common.write_atomic(model_path, self.model.save, ".keras")
            plot_accuracy(record.data["history"], figure_path, f"MNIST-1D {model_name}, seed {seed}")
            log(f"epoch {record.epochs_done:3d}: loss {row['loss']:.4f}  test loss {row['test_loss']:.4f}  "
                f"test acc {row['test_acc']:.2f} %  lr {row['current_lr']:.2e}  {row['epoch_seconds']:.1f} s "
                f"(cpu {row['epoch_cpu_seconds']:.1f} s)")

    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_delta=2e-4,
                                                mode="min", verbose=0)
    try:
        model.fit(x, y1, batch_size=batch_size, epochs=epochs, initial_epoch=record.epochs_done, shuffle=True,
                  validation_data=(xt, yt1), validation_batch_size=test_batch_size, callbacks=[plateau, Recorder()],
                  verbose=0)
    except BaseException as e:
        record.finish("failed", error=f"{type(e).__name__}: {e}", wall_clock=time.monotonic())
        raise
    history = record.data["history"]
    diverged = not all(records.is_finite(v) for v in history.get("loss", []))
    record.finish("diverged" if diverged else "completed", wall_clock=time.monotonic())
    acc = history.get("test_acc", [])
    if acc:
        log(f"done: final test acc {acc[-1]:.2f} %, best {max(acc):.2f} % (epoch {int(np.argmax(acc)) + 1}), "
            f"wall time {record.data['wall_time']:.0f} s")
    return record.data


def main(argv):
    from absl import flags

    f = flags.FLAGS
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        run(seed=f.seed, epochs=f.epochs, static_lagnet=f.static_lagnet, exp_dir=f.exp_dir, lr=f.lr,
            batch_size=f.batch_size, subset=(f.train_subset, f.test_subset) if f.train_subset else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _define_flags():
    from absl import flags

    flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling).")
    flags.DEFINE_integer("epochs", 150, "Training epochs.", lower_bound=1)
    flags.DEFINE_bool("static_lagnet", False, "Fixed lag-line memory under an LE-MLP instead of the E2E GLE net.")
    flags.DEFINE_string("exp_dir", "data/mnist1d", "Experiment directory (records, figure, model).")
    flags.DEFINE_float("lr", 5e-3 * SAMPLE_LENGTH / 360, "Adam learning rate (the seed's 5e-3 · 72/360).")
    flags.DEFINE_integer("batch_size", 100, "Training batch size.", lower_bound=1)
    flags.DEFINE_integer("train_subset", 0, "Use only this many training sequences (0: all).", lower_bound=0)
    flags.DEFINE_integer("test_subset", 1000, "With --train_subset: this many test sequences.", lower_bound=1)


if __name__ == "__main__":
    from absl import app

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
