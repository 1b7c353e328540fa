"""Metrics of the ancestor that Keras does not have: the classification error rate, and the share of
the inputs' variance a reconstruction misses."""

import keras
import tensorflow as tf


def error_rate(y_true, y_pred):
    """100 − accuracy, in percent, per example (argmax of one-hot targets against predictions).

    `tf.math.argmax`, not `keras.ops.argmax`: Keras's maps −0.0 to the smallest negative float first
    (through a bitcast, which `tf.vectorized_map` cannot vectorize: the search engine's member programs
    would fall back to a loop); one-hot targets and predicted probabilities hold no −0.0, so the
    argmax is the same."""
    correct = tf.equal(tf.math.argmax(y_true, axis=-1), tf.math.argmax(y_pred, axis=-1))
    return 100.0 * (1.0 - keras.ops.cast(correct, "float32"))


@keras.saving.register_keras_serializable(package="bpfree")
class ErrorRate(keras.metrics.MeanMetricWrapper):
    """Classification error in percent: 100 − accuracy. Pass ``"error_rate"`` to `Network.compile`."""

    def __init__(self, name="error_rate", dtype=None):
        super().__init__(error_rate, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="bpfree")
class UnexplainedVariance(keras.metrics.Metric):
    """Reconstruction error as the fraction of the targets' variance the predictions leave unexplained:

        FVU = Σ_i w_i ‖ŷ_i − y_i‖² / Σ_i w_i ‖y_i − ȳ‖²,   ȳ = Σ_i w_i y_i / Σ_i w_i (per feature),

    over every example seen since the last reset (an epoch's training batches, or a whole validation
    split), features flattened. FVU = 1 − R² (R² pooled over the features, constant ones included): 0 is
    a perfect reconstruction and 1 is no better than predicting the mean input, whatever the data's
    scale, unlike the MSE loss. Pass ``"unexplained_variance"`` to `Network.compile`.

    The sum of squares about the mean is accumulated by merging each batch's (count, mean, M2) into the
    running ones (Chan et al. 1979): with δ = ȳ_b − ȳ, M2 ← M2 + M2_b + δ² n n_b / (n + n_b), exact and
    free of the cancellation of Σy² − (Σy)²/n. `features` (the flattened target size) builds the state
    at once; None builds it at the first batch.
    """

    def __init__(self, features=None, name="unexplained_variance", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.features = None if features is None else int(features)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")
        self.squared_error = self.add_variable(shape=(), initializer="zeros", name="squared_error")
        if self.features is not None:
            self._build_state(self.features)

    def _build_state(self, features):
        self.features = int(features)
        self.mean = self.add_variable(shape=(self.features,), initializer="zeros", name="mean")
        self.m2 = self.add_variable(shape=(self.features,), initializer="zeros", name="m2")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.convert_to_tensor(y_true, dtype=self.dtype)
        y_pred = keras.ops.convert_to_tensor(y_pred, dtype=self.dtype)
        features = 1
        for size in y_true.shape[1:]:
            features *= size
        if not hasattr(self, "mean"):
            self._build_state(features)
        y_true = keras.ops.reshape(y_true, (-1, self.features))
        y_pred = keras.ops.reshape(y_pred, (-1, self.features))
        if sample_weight is None:
            weight = keras.ops.ones_like(y_true[:, :1])
        else:
            weight = keras.ops.reshape(keras.ops.cast(sample_weight, self.dtype), (-1, 1))
        n_b = keras.ops.sum(weight)
        mean_b = keras.ops.divide_no_nan(keras.ops.sum(weight * y_true, axis=0), n_b)
        m2_b = keras.ops.sum(weight * keras.ops.square(y_true - mean_b), axis=0)
        n = keras.ops.convert_to_tensor(self.count)
        total = n + n_b
        delta = mean_b - self.mean
        self.mean.assign(self.mean + delta * keras.ops.divide_no_nan(n_b, total))
        self.m2.assign(self.m2 + m2_b + keras.ops.square(delta) * keras.ops.divide_no_nan(n * n_b, total))
        self.count.assign(total)
        self.squared_error.assign(self.squared_error + keras.ops.sum(weight * keras.ops.square(y_pred - y_true)))

    def result(self):
        if not hasattr(self, "mean"):
            return keras.ops.convert_to_tensor(float("nan"), dtype=self.dtype)
        return self.squared_error / keras.ops.sum(self.m2)

    def get_config(self):
        return {"features": self.features, "name": self.name, "dtype": self.dtype}


METRICS = {"error_rate": ErrorRate, "error": ErrorRate, "unexplained_variance": UnexplainedVariance}


def resolve(metrics):
    """Replaces the names Keras does not know (``"error_rate"``, ``"unexplained_variance"``) by metric objects."""
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {k: resolve(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [METRICS[m]() if isinstance(m, str) and m in METRICS else m for m in metrics]
    return resolve([metrics])
