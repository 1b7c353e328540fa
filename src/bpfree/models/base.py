"""`RuleModel`: what every model trained by a learning rule shares.

- compile defaults (the problem's loss, ``"error_rate"`` understood) and `compile_from_config`;
- metrics that exist in training only (trackers, a rule's reported losses), left out of `evaluate`;
- one seed policy: an explicit seed, or one drawn from the OS and recorded in the config;
- the train step of every feedforward-style rule (DESIGN.md): one forward pass recording what the
  rule reads into a `ForwardPass`, the rule's surrogate J = L + Σ_k ℓ_k (its `local_losses`), one
  gradient call, one optimizer update after every gradient is computed, and the trackers when asked
  for (``bp_cosine`` adds one plain backprop pass on the same dropout masks and batch-norm state).

A subclass provides `forward_pass(x, y, sample_weight, training)`, `bp_objective(x, y, sample_weight)`
(the loss whose gradient is backprop's), `bp_cosine_kernels` and `default_loss()`; GLENetwork keeps
its own time-loop train step.
"""

import random

import keras
import tensorflow as tf

from bpfree import metrics as bpfree_metrics
from bpfree import optimizers
from bpfree import trackers as trackers_lib

# Drawn seeds leave room for the offsets added to them (feedback matrices, inverses).
from bpfree.seeds import DRAWN_RANGE as _SEED_RANGE


def resolve_seed(seed):
    """`seed` as an int, or a fresh one drawn from the OS when None (then recorded in the model's config)."""
    return random.SystemRandom().randrange(_SEED_RANGE) if seed is None else int(seed)


def surrogate(forward, local_losses):
    """J = L + Σ_k ℓ_k: the scalar whose gradient is the rule's update."""
    if not local_losses:
        return forward.loss
    return forward.loss + keras.ops.sum(keras.ops.stack(list(local_losses.values())))


class RuleModel(keras.Model):
    """The base of bpfree's models; see the module docstring."""

    rule = None
    trackers = ()
    tracker_metrics = ()
    rule_metrics = ()

    @classmethod
    def from_rule(cls, rule, arch, input_dim, output_dim, **options):
        """The model of the configured `rule` from `build_model`'s options."""
        return cls(rule, arch, input_dim, output_dim, **options)

    def default_loss(self):
        """The loss `compile` uses when none is given."""
        return None

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """As `keras.Model.compile`; `loss` defaults to the model's (`default_loss`), and the metric
        name ``"error_rate"`` (100 − accuracy, %) is understood."""
        if loss is None:
            loss = self.default_loss()
        super().compile(optimizer=optimizer, loss=loss, metrics=bpfree_metrics.resolve(metrics), **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile_from_config for models whose compile() is custom; ours only fill in
        # defaults, so the saved compile arguments replay through it unchanged.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def train_only_metrics(self):
        return list(self.tracker_metrics) + list(self.rule_metrics)

    def test_step(self, data):
        logs = super().test_step(data)
        names = {m.name for m in self.train_only_metrics}
        return {k: v for k, v in logs.items() if k not in names}

    # ------------------------------------------------------------------------------- training
    def forward_pass(self, x, y, sample_weight=None, training=True):
        raise NotImplementedError

    def bp_objective(self, x, y, sample_weight=None):
        """The scalar whose gradient is backpropagation's, on the plain (unwired) network."""
        raise NotImplementedError

    @property
    def bp_cosine_kernels(self):
        """The kernels the ``bp_cosine`` tracker compares, layer 1 first."""
        return []

    def rule_objective(self, x, y, sample_weight=None):
        """One training forward pass wired for the rule, its local losses and J = L + Σ_k ℓ_k, as
        (forward, local, J); call it under the tape that differentiates J (the train step, `rule_gradients`)."""
        forward = self.forward_pass(x, y, sample_weight, training=True)
        local = self.rule.local_losses(forward)
        return forward, local, surrogate(forward, local)

    def rule_gradients(self, x, y, sample_weight=None):
        """The rule's gradient of every trainable variable on one batch (no update): the direction the
        train step hands to the optimizer."""
        with tf.GradientTape() as tape:
            _, _, objective = self.rule_objective(x, y, sample_weight)
        return tape.gradient(objective, self.trainable_variables)

    def bp_gradients(self, x, y, sample_weight=None):
        """Backpropagation's gradient of every trainable variable on one batch (no update)."""
        with tf.GradientTape() as tape:
            loss = self.bp_objective(x, y, sample_weight)
        return tape.gradient(loss, self.trainable_variables)

    def _replayable_state(self):
        """Non-trainable state a second forward pass must start from again (dropout seeds, batch norm)."""
        return []

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        needs_bp = trackers_lib.needs_bp_gradient(self.trackers)
        with tf.GradientTape(persistent=needs_bp) as tape:
            if needs_bp:
                state = [tf.identity(v) for v in self._replayable_state()]
            forward, local, objective = self.rule_objective(x, y, sample_weight)
            self._loss_tracker.update_state(forward.loss, sample_weight=tf.shape(x)[0])
            objective = self.optimizer.scale_loss(objective)
            if needs_bp:
                # Replay the same dropout masks and batch-norm statistics for the true gradient.
                for v, value in zip(self._replayable_state(), state):
                    v.assign(value)
                bp_loss = self.bp_objective(x, y, sample_weight)
        variables = self.trainable_variables
        grads = tape.gradient(objective, variables)
        bp_grads = tape.gradient(bp_loss, self.bp_cosine_kernels) if needs_bp else None
        if needs_bp:
            del tape
        optimizers.apply_after(self.optimizer, grads, variables, after=(forward.y_pred, local, bp_grads))
        for metric in self.rule_metrics:
            metric.update_state(local[metric.name])
        if self.tracker_metrics:
            values = trackers_lib.compute(self, dict(zip((id(v) for v in variables), grads)), bp_grads, forward, local)
            for metric in self.tracker_metrics:
                metric.update_state(values[metric.name])
        return self.compute_metrics(x, y, forward.y_pred, sample_weight=sample_weight)
