"""`RelativeReduceLROnPlateau`: Keras's ReduceLROnPlateau with PyTorch's relative improvement threshold.

Keras counts an epoch as progress when the monitored value beats the best one by an absolute
``min_delta``; PyTorch's `ReduceLROnPlateau` (``threshold_mode="rel"``, its default, used by the GLE seed's
MNIST-1D runs with threshold 1e-4) by a fraction of the best value:

    min mode:  better  ⇔  value < best · (1 − threshold),      max mode:  better  ⇔  value > best · (1 + threshold).

An absolute delta matches this only at one scale of the loss. Everything else (patience, factor, cooldown,
min_lr) is Keras's: the learning rate is multiplied by ``factor`` once ``patience`` epochs in a row were
not better, so PyTorch's patience p (it waits for p + 1 bad epochs) is Keras's p + 1.
"""

import keras

from bpfree import checks

MODES = ("min", "max")


class RelativeReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without a relative improvement
    of ``threshold`` in ``monitor`` (see the module docstring)."""

    def __init__(self, monitor="val_loss", mode="min", factor=0.1, patience=10, threshold=1e-4, cooldown=0,
                 min_lr=0.0, verbose=0):
        checks.choice("mode", mode, MODES)
        self.threshold = checks.number("threshold", threshold, lambda v: v >= 0, "a number ≥ 0")
        super().__init__(monitor=monitor, factor=factor, patience=patience, verbose=verbose, mode=mode, min_delta=0.0,
                         cooldown=cooldown, min_lr=min_lr)

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        if self.mode == "min":
            return monitor_value < reference_value * (1 - self.threshold)
        return monitor_value > reference_value * (1 + self.threshold)

    def get_config(self):
        return {"monitor": self.monitor, "mode": self.mode, "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "cooldown": self.cooldown, "min_lr": self.min_lr}
