"""Metrics of the ancestor that Keras does not have."""

import keras


def error_rate(y_true, y_pred):
    """100 − accuracy, in percent, per example (argmax of one-hot targets against predictions)."""
    correct = keras.ops.equal(keras.ops.argmax(y_true, axis=-1), keras.ops.argmax(y_pred, axis=-1))
    return 100.0 * (1.0 - keras.ops.cast(correct, "float32"))


@keras.saving.register_keras_serializable(package="bpfree")
class ErrorRate(keras.metrics.MeanMetricWrapper):
    """Classification error in percent: 100 − accuracy. Pass ``"error_rate"`` to `Network.compile`."""

    def __init__(self, name="error_rate", dtype=None):
        super().__init__(error_rate, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def resolve(metrics):
    """Replaces the names Keras does not know (``"error_rate"``) by metric objects."""
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {k: resolve(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [ErrorRate() if m in ("error_rate", "error") else m for m in metrics]
    return resolve([metrics])
