"""Per-epoch learning-rate schedules of a search (`lr_schedule`), and the callback that applies them.

The learning rate of epoch e (counted from 0, as PyTorch's schedulers count) for a base rate η:

    constant:  η_e = η
    step:      η_e = η · factor^|{m ∈ milestones : m ≤ e}|         (PyTorch's MultiStepLR; milestones [50, 75]
                                                                    and factor 0.1: η until epoch 49, η/10 from 50,
                                                                    η/100 from 75)
    cosine:    η_e = η · ½ (1 + cos(π e / N))                       (N = num_epochs; CosineDecay at step e, α = 0)
    plateau:   η_e = η · factor^r_e, r_e the reductions Keras's ReduceLROnPlateau makes on the validation
               losses of epochs 0..e−1: an epoch improves when val_loss < best − min_delta (min_delta = 1e-4,
               Keras's default); after `patience` epochs in a row without one the rate is multiplied by
               `factor` and the count restarts.

Every η_e is a pure function of (η, e) and, for plateau, of the validation losses already in the execution's
record, so a run resumed from its checkpoint at epoch e gets the rates the uninterrupted run had: nothing
else is kept. Keras's schedules (PiecewiseConstantDecay, CosineDecay) are functions of the optimizer's step,
not the epoch, and its ReduceLROnPlateau keeps its state (best, wait) in the callback object, which a resumed
run does not have; hence these few lines of math of our own, which the tests compare with Keras's
implementations. Applying and logging the rate is Keras's LearningRateScheduler (`EpochLearningRate`, in
`bpfree.schedule_callback`: it subclasses Keras's, and checking a schedule imports no TensorFlow).
"""

import math

import numpy as np

from bpfree import checks, choices

NAMES = choices.LR_SCHEDULES
PLATEAU_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau's default
LOG_NAME = "learning_rate"  # the history column of each epoch's rate (LearningRateScheduler's name for it)


def check(schedule, milestones=(), factor=0.1, patience=10):
    """Raises a one-line ValueError for a bad schedule setting (`lr_schedule`, `lr_milestones`, ...)."""
    checks.choice("lr_schedule", schedule, NAMES)
    checks.number("lr_factor", factor, lambda v: 0 < v < 1, "a number in (0, 1)")
    checks.whole("lr_patience", patience, lambda v: v >= 0, "an integer ≥ 0")
    milestones = list(milestones)
    if not all(isinstance(m, int) and not isinstance(m, bool) for m in milestones) or any(
            m < 1 for m in milestones) or any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise checks.invalid("lr_milestones", milestones, "strictly increasing epochs ≥ 1, e.g. [50, 75]")
    if schedule == "step" and not milestones:
        raise checks.invalid("lr_milestones", milestones, "at least one epoch with lr_schedule step, e.g. [50, 75]")
    if schedule != "step" and milestones:
        raise checks.invalid("lr_milestones", milestones, f"empty with lr_schedule {schedule} (milestones are "
                             "the step schedule's)")


def step_lr(lr, epoch, milestones, factor):
    """η · factor^(milestones ≤ epoch)."""
    return lr * factor ** sum(1 for m in milestones if m <= epoch)


def cosine_lr(lr, epoch, num_epochs):
    """η · ½ (1 + cos(π e / N)), e clipped to N."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch, num_epochs) / num_epochs))


def plateau_lr(lr, val_losses, factor, patience, min_delta=PLATEAU_MIN_DELTA):
    """The rate after Keras's ReduceLROnPlateau (mode min, cooldown 0, min_lr 0) has seen `val_losses`
    (None or NaN never improves). The rate is rounded to float32 after every reduction, as Keras's
    optimizer variable holds it."""
    best, wait = math.inf, 0
    for value in val_losses:
        value = math.nan if value is None else float(value)
        if value < best - min_delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                lr, wait = float(np.float32(lr * factor)), 0
    return lr


def lr_at(epoch, lr, schedule, *, milestones=(), factor=0.1, patience=10, num_epochs=1, val_losses=()):
    """η_e of `schedule` (module docstring); `val_losses`: those of epochs 0..e−1 (plateau only)."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        return step_lr(lr, epoch, milestones, factor)
    if schedule == "cosine":
        return cosine_lr(lr, epoch, num_epochs)
    if schedule == "plateau":
        return plateau_lr(float(np.float32(lr)), list(val_losses)[:epoch], factor, patience)
    raise checks.unknown("lr_schedule", schedule, NAMES)

