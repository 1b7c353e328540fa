"""MNIST-1D with GLE, as in the seed's `experiments/mnist1d/plastic_e2e.py` and `static_lagnet.py` (Fig. 8),
and the BP/BPTT baselines it compares with.

    python -m bpfree.experiments.mnist1d --seed 0 [--epochs 150] [--static_lagnet] [--exp_dir data/mnist1d] \\
        [--lr 1e-3] [--batch_size 100] [--train_subset 0] [--test_subset 1000] [--optimizer torch_adam|adam] \\
        [--network gle_e2e|static_lagnet|gle_e2e_42k|mlp|tcn|gru] [--length 360|40]

Each 360-step sample (MNIST-1D with final_seq_length 360, raw values) is fed one scalar per dt step,
with an Adam step at every dt step (40 batches × 360 = 14,400 updates per epoch); the prediction is
argmax Σ_t logits_t.

- default, `E2ELagMLPNet` (≈15k params; `bpfree.models.gle_mnist1d.e2e_lag_mlp`): seven GLEDense layers
  with mixed time constants, prospective errors, CE. Seed's result: 91.7 ± 0.8 % at epoch 150.
- ``--static_lagnet``: fixed cascaded leaky integrators under an LE-MLP 10→60→60→10
  (`bpfree.models.gle_mnist1d.static_lagnet_mlp`), ≈4.9k trainable params. Seed's result: 90.9 ± 0.6 %.

- ``--network gle_e2e_42k``: the seed's 42k variant (`plastic_e2e.py` with hidden_fast 30, hidden_slow 60:
  53 → 90 units a layer, 42,040 params; not scripted in the seed, its lr comment "2.5e3 for 30 fast" read
  as 2.5e-3 · 72/360 = 5e-4). Seed's result: 93.5 ± 0.9 %.
- ``--network mlp|tcn|gru``: the baselines, trained by BP / BPTT on the original (``--length 40``) or
  supersampled (``--length 360``, the default) sequences (`bpfree.experiments.mnist1d_baselines`: the
  MNIST-1D package's models and loop, Adam lr 1e-2, 6000 steps = 150 epochs, no plateau). Seed's results:
  MLP 65.5 ± 1.0, TCN 96.7 ± 0.9, GRU 94.0 ± 1.1 % (360); 65.0 / 93.7 / 90.3 % (40). Their records are
  ``records/<network>_<length>/``.

GLE nets: the seed's `torch.optim.Adam`, lr 5e-3 · 72/360 = 1e-3, ε = 1e-8 added after the bias correction
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
import sys

import keras
import numpy as np

from bpfree import checks, datasets, metrics, optimizers
from bpfree.experiments import entry, mnist1d_baselines
from bpfree.experiments.epoch_run import EpochRun
from bpfree.models.gle_mnist1d import MODELS, build, e2e_lag_mlp
from bpfree.plateau import RelativeReduceLROnPlateau

SAMPLE_LENGTH = 72  # the seed's "original length of MNIST-1D samples in arbitrary units"
ADAMS = ("torch_adam", "adam")  # ε after Adam's bias correction (the seed's torch.optim.Adam) | before it (Keras)
EPSILON = 1e-8  # the seed's (torch.optim.Adam's default)
GLE_NETWORKS = (*MODELS, "gle_e2e_42k")
NETWORKS = (*GLE_NETWORKS, *mnist1d_baselines.BASELINES)
SEED_LRS = {"gle_e2e_42k": 2.5e-3 * SAMPLE_LENGTH / 360, **{b: mnist1d_baselines.LR for b in mnist1d_baselines.BASELINES}}


@dataclasses.dataclass(frozen=True)
class MNIST1DConfig:
    """One MNIST-1D run (defaults: the seed's). `train_subset` > 0 takes random subsets of
    `train_subset` training and `test_subset` test sequences (quick runs and tests)."""

    seed: int = entry.flag(0, "Random seed (weights, shuffling).")
    epochs: int = entry.flag(150, "Training epochs.")
    static_lagnet: bool = entry.flag(False, "Fixed lag-line memory under an LE-MLP instead of the E2E GLE net.")
    lr: float = entry.flag(0.0, "Adam learning rate (0: the seed's for the network: 5e-3 · 72/360 = 1e-3 for the GLE "
                           "nets, 5e-4 for gle_e2e_42k, 1e-2 for the baselines).")
    optimizer: str = entry.flag("torch_adam", "torch_adam: ε added after Adam's bias correction, as the seed's "
                                "torch.optim.Adam | adam: Keras's, ε before it.")
    batch_size: int = entry.flag(100, "Training batch size.")
    test_batch_size: int = 1000
    train_subset: int = entry.flag(0, "Use only this many training sequences (0: all).")
    test_subset: int = entry.flag(1000, "With --train_subset: this many test sequences.")
    network: str = entry.flag("", "gle_e2e | static_lagnet | gle_e2e_42k | mlp | tcn | gru (empty: gle_e2e, or "
                              "static_lagnet with --static_lagnet).")
    length: int = entry.flag(360, "Sequence length of the baselines: 360 (supersampled) or 40 (original).")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "test_batch_size", "test_subset"):
            checks.whole(name, getattr(self, name), lambda v: v >= 1, "a positive integer")
        checks.whole("train_subset", self.train_subset, lambda v: v >= 0, "an integer ≥ 0 (0: all)")
        checks.number("lr", self.lr, lambda v: v >= 0, "a number ≥ 0 (0: the seed's)")
        checks.choice("--optimizer", self.optimizer, ADAMS)
        if self.network:
            checks.choice("--network", self.network, NETWORKS)
        if self.static_lagnet and self.network not in ("", "static_lagnet"):
            raise ValueError(f"--static_lagnet contradicts --network {self.network}; give one of them.")
        if self.length not in mnist1d_baselines.LENGTHS:
            raise ValueError(f"Invalid --length {self.length}; valid: 360, 40.")
        if self.length != 360 and self.network not in mnist1d_baselines.BASELINES:
            raise ValueError(f"--length {self.length} is for the baselines (mlp, tcn, gru); the GLE nets read 360 steps.")

    @property
    def network_name(self):
        return self.network or (MODELS[1] if self.static_lagnet else MODELS[0])

    @property
    def baseline(self):
        return self.network_name in mnist1d_baselines.BASELINES

    @property
    def model(self):
        """The record's name: the network, with the length for the baselines."""
        return f"{self.network_name}_{self.length}" if self.baseline else self.network_name

    @property
    def learning_rate(self):
        return self.lr or SEED_LRS.get(self.network_name, 5e-3 * SAMPLE_LENGTH / 360)

    @property
    def subset(self):
        return (self.train_subset, self.test_subset) if self.train_subset else None

    def hparams(self):
        return {"model": self.model, "network": self.network_name, "length": self.length,
                "epochs": self.epochs, "lr": float(self.learning_rate), "optimizer": self.optimizer,
                "epsilon": EPSILON, "epsilon_placement": optimizers.PLACEMENTS[self.optimizer],
                "batch_size": self.batch_size, "dt": None if self.baseline else 0.2, "subset": list(self.subset) if self.subset else None}


def load_data(subset=None, seed=0, length=360):
    """(x_train, y_train, x_test, y_test): raw MNIST-1D sequences (N, length), integer labels.
    `subset` (train, test) takes stratified-free random subsets (for quick runs and tests)."""
    name = "mnist1d_seq" if length == 360 else "mnist1d"
    x, y = datasets.load(name, "train", scaler="identity")
    xt, yt = datasets.load(name, "test", scaler="identity")
    if subset:
        rng = np.random.default_rng(seed)
        i, j = rng.permutation(len(x))[: subset[0]], rng.permutation(len(xt))[: subset[1]]
        x, y, xt, yt = x[i], y[i], xt[j], yt[j]
    return x, y, xt, yt


def make_optimizer(config):
    """`config.optimizer` (the seed's: ε after the bias correction) at `config.lr`, ε = 1e-8."""
    return optimizers.get(config.optimizer, config.learning_rate, epsilon=EPSILON)


def make_plateau():
    """The seed's ReduceLROnPlateau(patience 2, factor 0.5, relative threshold 1e-4) on the test loss, in
    Keras's terms (patience 3: see `bpfree.plateau`)."""
    return RelativeReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.5, patience=3, threshold=1e-4)


def build_network(name, seed, batch_size=100, length=360):
    """The GLE net or baseline `name` (module docstring)."""
    if name in mnist1d_baselines.BASELINES:
        return mnist1d_baselines.build(name, length, seed=seed)
    if name == "gle_e2e_42k":
        return e2e_lag_mlp(hidden_size=90, seed=seed, batch_size=batch_size)
    return build(name, seed, batch_size=batch_size)


def run(config, exp_dir, log=print):
    """Trains (or resumes) one seed; returns the execution record's data."""
    seed, epochs, batch_size, model_name = config.seed, config.epochs, config.batch_size, config.model
    x, y, xt, yt = load_data(subset=config.subset, seed=seed, length=config.length)
    y1, yt1 = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yt, 10)

    def build():
        model = build_network(config.network_name, seed, batch_size, config.length)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True) if config.baseline else None
        model.compile(optimizer=make_optimizer(config), loss=loss, metrics=[metrics.ErrorRate() if config.baseline else "error_rate"])
        return model

    run = EpochRun.open(exp_dir, model_name, seed, config.hparams(), epochs, build, log, split="test",
                        title=f"MNIST-1D {model_name}, seed {seed}")
    if run.done:
        return run.record.data
    model = run.model
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    per_batch = 1 if config.baseline else x.shape[1]
    log(f"{model_name}: {optimizers.describe(model.optimizer)}, {n_params} trainable parameters, {len(x)} train / "
        f"{len(xt)} test sequences of {x.shape[1]} steps, {int(np.ceil(len(x) / batch_size)) * per_batch} "
        f"optimizer steps per epoch{'' if config.baseline else ' (one per dt step)'}.")
    plateau = [] if config.baseline else [make_plateau()]
    # The baselines walk the data in order, as the MNIST-1D package's loop does.
    return run.fit(lambda callbacks: model.fit(
        x, y1, batch_size=batch_size, epochs=epochs, initial_epoch=run.epochs_done, shuffle=not config.baseline,
        validation_data=(xt, yt1), validation_batch_size=config.test_batch_size, callbacks=[*plateau, *callbacks],
        verbose=0))


# ------------------------------------------------------------------------------------------- CLI
def main(argv=None):
    return entry.main(MNIST1DConfig, run, exp_dir="data/mnist1d", argv=argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
