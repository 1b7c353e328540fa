"""MNIST-1D with GLE, as in the seed's `experiments/mnist1d/plastic_e2e.py` and `static_lagnet.py` (Fig. 8).

    python -m bpfree.experiments.mnist1d --seed 0 [--epochs 150] [--static_lagnet] [--exp_dir data/mnist1d] \\
        [--lr 1e-3] [--batch_size 100] [--train_subset 0] [--test_subset 1000] [--optimizer torch_adam|adam]

Each 360-step sample (MNIST-1D with final_seq_length 360, raw values) is fed one scalar per dt step,
with an Adam step at every dt step (40 batches × 360 = 14,400 updates per epoch); the prediction is
argmax Σ_t logits_t.

- default, `E2ELagMLPNet` (≈15k params; `bpfree.models.gle_mnist1d.e2e_lag_mlp`): seven GLEDense layers
  with mixed time constants, prospective errors, CE. Seed's result: 91.7 ± 0.8 % at epoch 150.
- ``--static_lagnet``: fixed cascaded leaky integrators under an LE-MLP 10→60→60→10
  (`bpfree.models.gle_mnist1d.static_lagnet_mlp`), ≈4.9k trainable params. Seed's result: 90.9 ± 0.6 %.

Both: the seed's `torch.optim.Adam`, lr 5e-3 · 72/360 = 1e-3, ε = 1e-8 added after the bias correction
(`bpfree.optimizers.TorchAdam`, ``--optimizer torch_adam``, the default; ``--optimizer adam`` is Keras's
Adam, the same ε added before the bias correction); batch 100 (test batch 1000),
ReduceLROnPlateau(factor 0.5) stepped on the **test** loss, as the seed does. PyTorch's patience 2
reduces after 3 epochs without improvement (num_bad_epochs > patience); Keras's reduces after
`patience` epochs (wait ≥ patience), so Keras patience 3 here; an epoch improves when its test loss is
below best · (1 − 1e-4), PyTorch's relative threshold (`bpfree.plateau.RelativeReduceLROnPlateau`).

Outputs in ``--exp_dir``: the execution record ``records/<model>/execution_<seed>.json`` (hparams with
the optimizer, its ε and where it adds it; per epoch:
loss, error_rate, test_loss, test_acc, current_lr, epoch_seconds, epoch_cpu_seconds;
`bpfree.results.load(exp_dir)` reads it),
``<model>_seed<seed>.png`` (test accuracy against epoch) and ``<model>_seed<seed>.keras`` (the model
with its optimizer and dynamic state, for resuming), all written atomically after every epoch. Running
the same command again resumes an interrupted run from its last finished epoch (the plateau
counter restarts, the optimizer is the saved one) and does nothing for a finished one. The first log
line names the optimizer and where it adds ε.
"""

import dataclasses
import os
import sys
import time

import keras
import numpy as np

from bpfree import checks, datasets, figures, io, optimizers, records
from bpfree.experiments import entry
from bpfree.models.gle_mnist1d import MODELS, build
from bpfree.plateau import RelativeReduceLROnPlateau

SAMPLE_LENGTH = 72  # the seed's "original length of MNIST-1D samples in arbitrary units"
ADAMS = ("torch_adam", "adam")  # ε after Adam's bias correction (the seed's torch.optim.Adam) | before it (Keras)
EPSILON = 1e-8  # the seed's (torch.optim.Adam's default)


@dataclasses.dataclass(frozen=True)
class MNIST1DConfig:
    """One MNIST-1D run (defaults: the seed's). `train_subset` > 0 takes random subsets of
    `train_subset` training and `test_subset` test sequences (quick runs and tests)."""

    seed: int = entry.flag(0, "Random seed (weights, shuffling).")
    epochs: int = entry.flag(150, "Training epochs.")
    static_lagnet: bool = entry.flag(False, "Fixed lag-line memory under an LE-MLP instead of the E2E GLE net.")
    lr: float = entry.flag(5e-3 * SAMPLE_LENGTH / 360, "Adam learning rate (the seed's 5e-3 · 72/360).")
    optimizer: str = entry.flag("torch_adam", "torch_adam: ε added after Adam's bias correction, as the seed's "
                                "torch.optim.Adam | adam: Keras's, ε before it.")
    batch_size: int = entry.flag(100, "Training batch size.")
    test_batch_size: int = 1000
    train_subset: int = entry.flag(0, "Use only this many training sequences (0: all).")
    test_subset: int = entry.flag(1000, "With --train_subset: this many test sequences.")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "test_batch_size", "test_subset"):
            checks.whole(name, getattr(self, name), lambda v: v >= 1, "a positive integer")
        checks.whole("train_subset", self.train_subset, lambda v: v >= 0, "an integer ≥ 0 (0: all)")
        checks.number("lr", self.lr, lambda v: v > 0, "a number > 0")
        checks.choice("--optimizer", self.optimizer, ADAMS)

    @property
    def model(self):
        return MODELS[1] if self.static_lagnet else MODELS[0]

    @property
    def subset(self):
        return (self.train_subset, self.test_subset) if self.train_subset else None

    def hparams(self):
        return {"model": self.model, "epochs": self.epochs, "lr": float(self.lr), "optimizer": self.optimizer,
                "epsilon": EPSILON, "epsilon_placement": optimizers.PLACEMENTS[self.optimizer],
                "batch_size": self.batch_size, "dt": 0.2, "subset": list(self.subset) if self.subset else None}


def load_data(subset=None, seed=0):
    """(x_train, y_train, x_test, y_test): raw 360-step MNIST-1D sequences (N, 360), integer labels.
    `subset` (train, test) takes stratified-free random subsets (for quick runs and tests)."""
    x, y = datasets.load("mnist1d_seq", "train", scaler="identity")
    xt, yt = datasets.load("mnist1d_seq", "test", scaler="identity")
    if subset:
        rng = np.random.default_rng(seed)
        i, j = rng.permutation(len(x))[: subset[0]], rng.permutation(len(xt))[: subset[1]]
        x, y, xt, yt = x[i], y[i], xt[j], yt[j]
    return x, y, xt, yt


def plot_accuracy(history, path, title):
    """Test accuracy against epoch, as a PNG at `path`."""
    plt = figures.pyplot()
    acc = history.get("test_acc", [])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(acc) + 1), acc, marker=".")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figures.save(fig, path)
    plt.close(fig)


def make_optimizer(config):
    """`config.optimizer` (the seed's: ε after the bias correction) at `config.lr`, ε = 1e-8."""
    return optimizers.get(config.optimizer, config.lr, epsilon=EPSILON)


def make_plateau():
    """The seed's ReduceLROnPlateau(patience 2, factor 0.5, relative threshold 1e-4) on the test loss, in
    Keras's terms (patience 3: see `bpfree.plateau`)."""
    return RelativeReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.5, patience=3, threshold=1e-4)


def run(config, exp_dir, log=print):
    """Trains (or resumes) one seed; returns the execution record's data."""
    seed, epochs, batch_size, model_name = config.seed, config.epochs, config.batch_size, config.model
    record_path = records.execution_path(exp_dir, model_name, seed)
    model_path = os.path.join(exp_dir, f"{model_name}_seed{seed}.keras")
    figure_path = os.path.join(exp_dir, f"{model_name}_seed{seed}.png")

    x, y, xt, yt = load_data(subset=config.subset, seed=seed)
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
        record = records.ExecutionRecord(exp_dir, model_name, seed, config.hparams(), seed=seed)
        model = build(model_name, seed, batch_size=batch_size)
        model.compile(optimizer=make_optimizer(config), metrics=["error_rate"])
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    log(f"{model_name}: {optimizers.describe(model.optimizer)}, {n_params} trainable parameters, {len(x)} train / "
        f"{len(xt)} test sequences of {x.shape[1]} steps, {int(np.ceil(len(x) / batch_size)) * x.shape[1]} "
        "optimizer steps per epoch.")
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
            io.write_atomic(model_path, self.model.save, ".keras")
            plot_accuracy(record.data["history"], figure_path, f"MNIST-1D {model_name}, seed {seed}")
            log(f"epoch {record.epochs_done:3d}: loss {row['loss']:.4f}  test loss {row['test_loss']:.4f}  "
                f"test acc {row['test_acc']:.2f} %  lr {row['current_lr']:.2e}  {row['epoch_seconds']:.1f} s "
                f"(cpu {row['epoch_cpu_seconds']:.1f} s)")

    plateau = make_plateau()
    try:
        model.fit(x, y1, batch_size=batch_size, epochs=epochs, initial_epoch=record.epochs_done, shuffle=True,
                  validation_data=(xt, yt1), validation_batch_size=config.test_batch_size,
                  callbacks=[plateau, Recorder()], verbose=0)
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


# ------------------------------------------------------------------------------------------- CLI
def main(argv=None):
    return entry.main(MNIST1DConfig, run, exp_dir="data/mnist1d", argv=argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
