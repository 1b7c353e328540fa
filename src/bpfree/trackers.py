"""Trackers: opt-in diagnostics of a rule, reported as Keras metrics (history, TensorBoard).

Layers are numbered 1..L for the hidden ones and L+1 for the output layer.

- ``bp_cosine``: per hidden layer l, cos(ΔW_l^rule, ∇W_l L) — the angle between the rule's kernel
  update and the true backprop gradient (1.0 for bp). Costs one more forward/backward pass.
- ``local_loss``: per hidden layer, the loss of the projection h_l B_l in the output space
  (CE for classification, MSE for reconstruction); rules with direct feedback only.
- ``weights``: ‖W_l‖ and ‖b_l‖ (Frobenius) of every layer, after the step.
- ``gradients``: ‖ΔW_l‖ of every layer's kernel update direction (the rule's gradient).
- ``weight_alignment``: cos(W_l, B_{l−1} B_lᵀ) for l = 2..L and cos(W_out, B_L) for the output
  layer (direct rules); cos(W_l, B_l) for l = 2..L+1 (fa). Alignment is what makes these rules learn.

Activation histograms are written by the `ActivationHistograms` callback when a histogram frequency
is set. With no tracker on, `Network.train_step` computes nothing extra.
"""

import logging
import os

import keras
import tensorflow as tf

from bpfree.rules.base import projected_loss

TRACKERS = ("bp_cosine", "local_loss", "weights", "gradients", "weight_alignment")
_EPS = 1e-12


def validate(trackers):
    if isinstance(trackers, str):
        raise ValueError(f"trackers must be a sequence of names, got the string {trackers!r}.")
    for name in trackers:
        if name not in TRACKERS:
            raise ValueError(f"Unknown tracker {name!r}; valid: {', '.join(TRACKERS)}.")


def needs_bp_gradient(trackers):
    return "bp_cosine" in trackers


def metric_names(model):
    """The metric names a model's trackers report, in order; trackers that do not apply to the
    model's rule are skipped with a warning."""
    c = model.network_config
    n_hidden = len(c.arch)
    layers = range(1, n_hidden + 2)
    names = []
    for tracker in c.trackers:
        if tracker == "bp_cosine":
            names += [f"bp_cosine_{l}" for l in range(1, n_hidden + 1)]
        elif tracker == "local_loss":
            if model.rule.feedback != "direct":
                _skip(tracker, c.algorithm, "it has no direct feedback projections")
                continue
            names += [f"local_loss_{l}" for l in range(1, n_hidden + 1)]
        elif tracker == "weights":
            names += [f"weight_norm_{l}" for l in layers]
            if c.use_bias:
                names += [f"bias_norm_{l}" for l in layers]
        elif tracker == "gradients":
            names += [f"update_norm_{l}" for l in layers]
        elif tracker == "weight_alignment":
            if model.rule.feedback is None:
                _skip(tracker, c.algorithm, "it has no feedback matrices")
                continue
            names += [f"weight_alignment_{l}" for l in range(2, n_hidden + 2)]
    return names


def compute(model, grad_of, bp_grads, forward, local_losses):
    """Tracker values by metric name. `grad_of` maps id(variable) to the rule's gradient, `forward` is
    the step's `bpfree.rules.base.ForwardPass` and `local_losses` the rule's {name: term}."""
    c = model.network_config
    layers = model.weighted_layers
    values = {}
    for tracker in c.trackers:
        if tracker == "bp_cosine":
            for l, (block, bp) in enumerate(zip(model.blocks, bp_grads), start=1):
                values[f"bp_cosine_{l}"] = cosine(grad_of[id(block.dense.kernel)], bp)
        elif tracker == "local_loss" and model.rule.feedback == "direct":
            if model.rule.local_losses_are_projected:
                losses = list(local_losses.values())
            else:
                losses = [projected_loss(p, forward.y, c) for p in forward.projections]
            for l, loss in enumerate(losses, start=1):
                values[f"local_loss_{l}"] = loss
        elif tracker == "weights":
            for l, layer in enumerate(layers, start=1):
                values[f"weight_norm_{l}"] = norm(layer.kernel)
                if layer.bias is not None:
                    values[f"bias_norm_{l}"] = norm(layer.bias)
        elif tracker == "gradients":
            for l, layer in enumerate(layers, start=1):
                values[f"update_norm_{l}"] = norm(grad_of[id(layer.kernel)])
        elif tracker == "weight_alignment" and model.rule.feedback is not None:
            feedback = [keras.ops.convert_to_tensor(b) for b in model.feedback_matrices]
            if model.rule.feedback == "layerwise":
                targets = feedback
            else:
                targets = [keras.ops.matmul(feedback[l - 1], keras.ops.transpose(feedback[l]))
                           for l in range(1, len(feedback))] + [feedback[-1]]
            for l, (layer, target) in enumerate(zip(layers[1:], targets), start=2):
                values[f"weight_alignment_{l}"] = cosine(layer.kernel, target)
    return values


def cosine(a, b):
    a = keras.ops.reshape(keras.ops.convert_to_tensor(a), (-1,))
    b = keras.ops.reshape(keras.ops.convert_to_tensor(b), (-1,))
    return keras.ops.sum(a * b) / (keras.ops.sqrt(keras.ops.sum(a * a) * keras.ops.sum(b * b)) + _EPS)


def norm(a):
    a = keras.ops.convert_to_tensor(a)
    return keras.ops.sqrt(keras.ops.sum(a * a))


def _skip(tracker, algorithm, why):
    logging.getLogger("bpfree").warning("Tracker %r does not apply to %r (%s); skipped.", tracker, algorithm, why)


class ActivationHistograms(keras.callbacks.Callback):
    """Writes histograms of every hidden layer's activity on a fixed batch to TensorBoard.

    Keras's own TensorBoard callback histograms weights only; a rule's behaviour shows in the
    activities (saturation, dead units), so they are logged under ``activations/layer_<l>``.
    """

    def __init__(self, log_dir, x_sample, histogram_freq=1):
        super().__init__()
        if histogram_freq <= 0:
            raise ValueError(f"histogram_freq must be positive, got {histogram_freq}.")
        self.log_dir = os.path.join(log_dir, "train")
        self.x_sample = x_sample
        self.histogram_freq = int(histogram_freq)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.histogram_freq:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for l, h in enumerate(self.model.hidden_activations(self.x_sample), start=1):
                tf.summary.histogram(f"activations/layer_{l}", h, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
