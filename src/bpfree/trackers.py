"""Trackers: opt-in diagnostics of a rule, reported as Keras metrics (history, TensorBoard).

Layers are numbered 1..L for the hidden ones and L+1 for the output layer.

- ``bp_cosine``: per hidden layer l, cos(ΔW_l^rule, ∇W_l L) — the angle between the rule's kernel
  update and the true backprop gradient (1.0 for bp). Costs one more forward/backward pass.
- ``local_loss``: per hidden layer, the loss of the projection h_l B_l in the output space
  (CE for classification, MSE for reconstruction); rules with direct feedback only.
- ``weights``: ‖W_l‖ and ‖b_l‖ (Frobenius) of every layer, after the step.
- ``gradients``: ‖ΔW_l‖ of every layer's kernel update direction (the rule's gradient).
- ``weight_alignment``: cos(W_l, B_{l−1} B_lᵀ) for l = 2..L and cos(W_out, B_L) for the output
  layer (direct rules); cos(W_l, B_l) for l = 2..L+1 (fa): the rule's `alignment_targets`. Alignment is
  what makes these rules learn.

Activation histograms are written by the `ActivationHistograms` callback when a histogram frequency
is set. With no tracker on, `Network.train_step` computes nothing extra.
"""

import logging
import os

import keras
import tensorflow as tf

from bpfree import choices
from bpfree.rules.base import projected_loss

TRACKERS = choices.TRACKERS
_EPS = 1e-12


def validate(trackers):
    choices.check_trackers(trackers)


def needs_bp_gradient(trackers):
    return "bp_cosine" in trackers


def metric_names(model):
    """The metric names a model's trackers report, in order; trackers that do not apply to the
    model's rule are skipped with a warning."""
    layers = range(1, len(model.weighted_layers) + 1)
    names = []
    for tracker in model.trackers:
        if tracker == "bp_cosine":
            names += [f"bp_cosine_{l}" for l in range(1, len(model.bp_cosine_kernels) + 1)]
        elif tracker == "local_loss":
            if not getattr(model, "projections", None):
                _skip(tracker, model.rule.name, "it has no direct feedback projections")
                continue
            names += [f"local_loss_{l}" for l in range(1, len(model.projections) + 1)]
        elif tracker == "weights":
            names += [f"weight_norm_{l}" for l in layers]
            names += [f"bias_norm_{l}" for l, layer in zip(layers, model.weighted_layers) if layer.bias is not None]
        elif tracker == "gradients":
            names += [f"update_norm_{l}" for l in layers]
        elif tracker == "weight_alignment":
            targets = model.rule.alignment_targets(model)
            if not targets:
                _skip(tracker, model.rule.name, "it has no feedback matrices")
                continue
            names += [f"weight_alignment_{l}" for l in targets]
    return names


def compute(model, grad_of, bp_grads, forward, local_losses):
    """Tracker values by metric name. `grad_of` maps id(variable) to the rule's gradient, `forward` is
    the step's `bpfree.forward_pass.ForwardPass` and `local_losses` the rule's {name: term}."""
    layers = model.weighted_layers
    values = {}
    for tracker in model.trackers:
        if tracker == "bp_cosine":
            for l, (kernel, bp) in enumerate(zip(model.bp_cosine_kernels, bp_grads), start=1):
                values[f"bp_cosine_{l}"] = cosine(grad_of[id(kernel)], bp)
        elif tracker == "local_loss" and getattr(model, "projections", None):
            if model.rule.local_losses_are_projected:
                losses = list(local_losses.values())
            else:
                c = model.network_config
                kind = model.rule.local_loss_kind(c)
                losses = [projected_loss(p, forward.y, kind, c.output_activation) for p in forward.projections]
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
        elif tracker == "weight_alignment":
            for l, target in model.rule.alignment_targets(model).items():
                values[f"weight_alignment_{l}"] = cosine(layers[l - 1].kernel, target)
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
