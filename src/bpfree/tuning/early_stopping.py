"""Early stopping across a kill: the stopping decision of a run that was never stopped.

Keras's `EarlyStopping` (every objective minimised) keeps the best monitored value and counts the epochs
since it improved (``wait``); after epoch e it stops the training when ``wait ≥ patience`` and e > 0.
A resumed run (at epoch k) must decide as the uninterrupted one: `ResumableEarlyStopping` first replays
the monitored values of epochs 0..k−1 from the record, so its best value and count are that run's.

A replayed history can already have stopped the training, at epoch k−1 (the run was killed after the
checkpoint of the epoch that stopped it, before its record was completed; or it stopped at the last epoch
of a search since grown to more epochs). Keras asks `model.stop_training` only after an epoch, so such a
run would train one epoch more than the uninterrupted one: `stopped` says so beforehand, and the execution
ends without training (`bpfree.tuning.execution.Execution.open`).
"""

import math

import keras


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping that, in a run resumed at epoch k, first replays the monitored values of
    epochs 0..k−1 (from the record), so its best value and patience count are those of the run that was
    never stopped."""

    def __init__(self, monitor, patience, past=()):
        super().__init__(monitor=monitor, patience=patience, mode="min")  # every objective is minimised
        self.past = list(past)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, value in enumerate(self.past):
            # A record keeps a value that was not finite as None; the live run saw it (NaN, mostly) and counted
            # the epoch as one without improvement, so the replay does too (skipping it would restart the count).
            self.on_epoch_end(epoch, {self.monitor: math.nan if value is None else value})


class _Training:
    """What `EarlyStopping` reads and sets of the model it watches: only `stop_training`."""

    stop_training = False


def stopped(history, monitor, patience):
    """Whether early stopping on `monitor` with `patience`, replaying `history` ({metric: values per
    epoch}, a record's), has stopped the training by the end of its last epoch: decided by the same
    callback as the training's, so that both agree."""
    callback = ResumableEarlyStopping(monitor, patience, past=history.get(monitor, []))
    callback.set_model(_Training())
    callback.on_train_begin()
    return bool(callback.model.stop_training)
