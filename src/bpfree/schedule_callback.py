"""`EpochLearningRate`: the Keras callback that applies a `bpfree.schedules` rate each epoch.

Apart from the schedules' math so that checking a schedule imports no Keras.
"""

import keras

from bpfree.schedules import lr_at


class EpochLearningRate(keras.callbacks.LearningRateScheduler):
    """Keras's LearningRateScheduler with η_e of `schedule`: the optimizer's rate is set at the start of
    every epoch e and logged at its end as "learning_rate" (`bpfree.schedules.LOG_NAME`; "lr" is the hparam η,
    a column of its own in results).

    `history()` returns the execution's history so far (its record's: for plateau, η_e reads its
    "val_loss"); nothing else is kept, so a resumed run replays exactly. Place it before the callback
    that writes the record, which then holds each epoch's rate.
    """

    def __init__(self, lr, schedule, history, *, milestones=(), factor=0.1, patience=10, num_epochs=1):
        super().__init__(self.rate)
        self.lr, self.lr_schedule, self.history = float(lr), schedule, history
        self.settings = {"milestones": tuple(milestones), "factor": float(factor), "patience": int(patience),
                         "num_epochs": int(num_epochs)}

    def rate(self, epoch, current=None):
        """η_e (the optimizer's `current` rate is not read: η_e is a function of η, e and the history)."""
        val_losses = self.history().get("val_loss", []) if self.lr_schedule == "plateau" else ()
        return float(lr_at(epoch, self.lr, self.lr_schedule, val_losses=val_losses, **self.settings))

    def get_config(self):
        return {"lr": self.lr, "schedule": self.lr_schedule, **self.settings}
