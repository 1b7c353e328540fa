"""Google Speech Commands (KW12) with GLE, as in the seed's `experiments/gsc/gsc_mel_gle.py` (Fig. 8).

    python -m bpfree.experiments.gsc --seed 0 [--epochs 420] [--exp_dir data/gsc] [--lr 1.953125e-5] \\
        [--batch_size 256] [--block_size 150] [--max_steps 0] [--synthetic 0] [--optimizer torch_adam|adam]

Data: tfds `speech_commands` (v0.02) as 32-band log-mel sequences, 41 frames (window 1024, stride 400,
40 frames/s) interpolated ×1/dt to 820 dt steps (`bpfree.datasets.speech_commands`: the exact
features, the KW12 selection and what differs from the seed); validation on the validation split
(the seed reports validation accuracy). tfds must have the set prepared (offline machines: one line
saying where it looked). ``--synthetic N`` trains on N random clips instead (white noise through the
same features, random labels; N/4 for validation): a smoke run of the real shapes without the data.

Network (`gsc_network`): GLEDense 32→750 (identity φ), 2 × 750→750 (tanh), 750→12 (linear, τ_m = τ_r =
2.4). Each 750-wide layer is five blocks of ``--block_size`` (150) units with τ_m = [2.4, 0.6, 1.2, 1.8,
2.4], τ_r = [2.4, 0.1, 0.1, 0.1, 0.1] (one LE block, four leaky-integrator blocks). dt 0.05, β 1, γ 0,
prospective errors, CE; an Adam step at every dt step; the prediction is argmax Σ_t logits_t.
The state persists across batches (the seed never resets it).

Optimiser: the seed's lr 5e-4 rescaled as its script does, lr · dt · (16000/512/0.05) / steps_per_sample
with steps_per_sample = int(40/dt) = 800: 5e-4 · 0.05 · 625 / 800 = 1.953125e-5 (its reference length
is 640 steps of a 512-sample stride at dt 0.05; the rescaling keeps lr × updates per sample fixed).
torch.optim.Adam's ε placement (``--optimizer torch_adam``, as in `bpfree.experiments.mnist1d`), batch
256, ReduceLROnPlateau(patience 3, factor 0.9) on the validation loss (Keras patience 4, PyTorch's
relative threshold 1e-4: `bpfree.plateau`), 420 epochs.

Outputs in ``--exp_dir`` as the other experiments: ``records/<model>/execution_<seed>.json`` (per epoch:
loss, error_rate, val_loss, val_acc, current_lr, epoch_seconds, epoch_cpu_seconds),
``<model>_seed<seed>.png`` (validation accuracy against epoch) and ``<model>_seed<seed>.keras``
(resume), written atomically after every epoch; the same command again resumes.
"""

import dataclasses
import sys

import numpy as np

from bpfree import checks, optimizers, seeds
from bpfree.datasets import speech_commands as sc
from bpfree.experiments import entry
from bpfree.experiments.epoch_run import EpochRun
from bpfree.layers.gle import GLEDense
from bpfree.models.gle import GLENetwork
from bpfree.plateau import RelativeReduceLROnPlateau

DT = 0.05
TAU_M = (2.4, 0.6, 1.2, 1.8, 2.4)
TAU_R = (2.4, 0.1, 0.1, 0.1, 0.1)
SEED_LR = 5e-4
STEPS_PER_SAMPLE = int(sc.SAMPLE_RATE / sc.HOP / DT)  # the seed's 800 (its features have 41 × 20 = 820 steps)
LR = SEED_LR * DT * (16000 / 512 / 0.05) / STEPS_PER_SAMPLE  # 1.953125e-5
EPSILON = 1e-8
MODEL = "gle_gsc"


@dataclasses.dataclass(frozen=True)
class GSCConfig:
    """One GSC run (defaults: the seed's)."""

    seed: int = entry.flag(0, "Random seed (weights, shuffling, the unknown/silence selection).")
    epochs: int = entry.flag(420, "Training epochs.")
    lr: float = entry.flag(LR, "Adam learning rate (the seed's 5e-4 · dt · 625 / 800).")
    optimizer: str = entry.flag("torch_adam", "torch_adam: ε after Adam's bias correction (the seed's "
                                "torch.optim.Adam) | adam: Keras's, ε before it.")
    batch_size: int = entry.flag(256, "Batch size (training and validation).")
    block_size: int = entry.flag(150, "Units per time-constant block (5 blocks a hidden layer).")
    max_steps: int = entry.flag(0, "Cut every sequence to this many dt steps (0: all 820).")
    synthetic: int = entry.flag(0, "Train on this many random clips instead of Speech Commands (0: the real set).")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "block_size"):
            checks.whole(name, getattr(self, name), lambda v: v >= 1, "a positive integer")
        for name in ("max_steps", "synthetic"):
            checks.whole(name, getattr(self, name), lambda v: v >= 0, "an integer ≥ 0 (0: off)")
        checks.number("lr", self.lr, lambda v: v > 0, "a number > 0")
        checks.choice("--optimizer", self.optimizer, tuple(optimizers.PLACEMENTS))

    @property
    def steps(self):
        full = sc.MAX_FRAMES * round(1 / DT)
        return min(self.max_steps, full) if self.max_steps else full

    def hparams(self):
        return {"model": MODEL, "epochs": self.epochs, "lr": float(self.lr), "optimizer": self.optimizer,
                "epsilon": EPSILON, "epsilon_placement": optimizers.PLACEMENTS[self.optimizer],
                "batch_size": self.batch_size, "dt": DT, "block_size": self.block_size, "steps": self.steps,
                "synthetic": self.synthetic}


def gsc_network(*, block_size=150, dt=DT, seed=0, batch_size=256, n_mels=sc.N_MELS, classes=12):
    """The seed's GSC `E2ELagMLPNet` (module docstring) as a `GLENetwork`."""
    tau_m = [t for t in TAU_M for _ in range(block_size)]
    tau_r = [t for t in TAU_R for _ in range(block_size)]
    common = dict(dt=dt, gamma=0.0, mode="gle", state_batch_size=batch_size)
    layers = [GLEDense(len(tau_m), tau_m=tau_m, tau_r=tau_r, activation="linear", seed=seeds.gle_layer(seed, 0),
                       name="gle_in", **common)]
    layers += [GLEDense(len(tau_m), tau_m=tau_m, tau_r=tau_r, activation="tanh", seed=seeds.gle_layer(seed, i),
                        name=f"gle_{i}", **common) for i in (1, 2)]
    layers.append(GLEDense(classes, tau_m=TAU_M[0], activation="linear", seed=seeds.gle_layer(seed, 3),
                           name="gle_out", **common))
    return GLENetwork(layers, n_mels, loss="ce", beta=1.0, input_mode="sequence", name=MODEL)


def load_data(config):
    """((frames, lengths, labels) train, the same for validation)."""
    if config.synthetic:
        return (sc.synthetic_frames(config.synthetic, config.seed),
                sc.synthetic_frames(max(1, config.synthetic // 4), config.seed + 1))
    return sc.load_frames("train", seed=config.seed), sc.load_frames("validation", seed=config.seed)


def run(config, exp_dir, log=print):
    """Trains (or resumes) one seed; returns the execution record's data."""
    seed, steps = config.seed, config.steps
    train, val = load_data(config)
    train_ds = sc.pipeline(*train, factor=round(1 / DT), steps=steps, batch_size=config.batch_size,
                           shuffle_seed=seed)
    val_ds = sc.pipeline(*val, factor=round(1 / DT), steps=steps, batch_size=config.batch_size)

    def build():
        model = gsc_network(block_size=config.block_size, seed=seed, batch_size=config.batch_size)
        model.compile(optimizer=optimizers.get(config.optimizer, config.lr, epsilon=EPSILON), metrics=["error_rate"])
        return model

    run = EpochRun.open(exp_dir, MODEL, seed, config.hparams(), config.epochs, build, log, split="val",
                        title=f"Speech Commands KW12, seed {seed}")
    if run.done:
        return run.record.data
    model = run.model
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    batches = int(np.ceil(len(train[2]) / config.batch_size))
    log(f"{MODEL}: {optimizers.describe(model.optimizer)}, {n_params} trainable parameters, {len(train[2])} train / "
        f"{len(val[2])} validation clips of {steps} steps, {batches} batches, {batches * steps} optimizer steps "
        f"per epoch{' (synthetic data)' if config.synthetic else ''}.")
    plateau = RelativeReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.9, patience=4, threshold=1e-4)
    return run.fit(lambda callbacks: model.fit(
        train_ds, epochs=config.epochs, initial_epoch=run.epochs_done, validation_data=val_ds, shuffle=False,
        callbacks=[plateau, *callbacks], verbose=0))


def main(argv=None):
    return entry.main(GSCConfig, run, exp_dir="data/gsc", argv=argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
