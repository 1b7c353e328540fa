"""The test split evaluated after every epoch (`SearchConfig.test_each_epoch`).

A published table reports the test error "at the epoch chosen on the validation set" (e.g. the DFC paper's
Table 1). The validation split chooses the epoch (score "best"); the test split's value at that epoch is
read back from the same history (`bpfree.benchmarks`). The test numbers choose nothing.
"""

import keras

PREFIX = "test_"


def logs_with_test(logs, test_logs):
    """`logs` with `test_logs` (a test evaluation's {metric: value}) added as ``test_<metric>``."""
    return {**logs, **{f"{PREFIX}{name}": value for name, value in test_logs.items()}}


class EpochTestCallback(keras.callbacks.Callback):
    """At every epoch's end, evaluates the model on `test_data` and adds ``test_<metric>`` to the epoch's
    logs in place, so the callbacks after it (the record's, TensorBoard) see them. Put it first."""

    def __init__(self, test_data):
        super().__init__()
        self.test_data = test_data

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        test = self.model.evaluate(self.test_data, verbose=0, return_dict=True)
        # Keras's CallbackList hands callbacks its logs with sorted keys (pythonify_logs); the grouped engine's
        # logs pass through it with the test metrics already in. Re-sorted here, in place, so both paths
        # record the same columns in the same order.
        merged = logs_with_test(logs, test)
        logs.clear()
        logs.update(sorted(merged.items()))
