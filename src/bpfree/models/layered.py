"""`LayeredNetwork`: what a network of hidden blocks and an output layer gives every feedforward-style rule.

Two models are such networks: `Network` (blocks from an arch string) and `ConvertedNetwork` (blocks
found in a user's Keras graph, `bpfree.convert`). Both provide

- ``forward(x, training, rule)`` → (hidden activities [h_1..h_L], output pre-activation z), wired for
  the rule's gradient when ``rule`` (detached block inputs, feedback weights in the backward pass);
- ``blocks`` (each with its weighted layer as ``.dense``), ``output_layer``, ``projections`` (the
  direct rules' fixed B_l), ``rule_layers``, ``network_config`` and ``_output_activation``;
- ``_stateful_layers()``: the layers whose non-trainable state a replayed pass must restore;

and this class turns them into what the train step and the rules read (`ForwardPass`, backprop's
objective, the feedback matrices, the kernels the ``bp_cosine`` tracker compares).
"""

import keras
import tensorflow as tf

from bpfree import trackers as trackers_lib
from bpfree.forward_pass import ForwardPass
from bpfree.models.base import RuleModel


class LayeredNetwork(RuleModel):
    """The base of `Network` and `ConvertedNetwork`; see the module docstring."""

    def _create_metrics(self):
        # Metrics before the model counts as built (Keras locks its state then); the trackers' names
        # may depend on the built layers (the rule's alignment targets).
        self.tracker_metrics = [keras.metrics.Mean(name=n) for n in trackers_lib.metric_names(self)]
        self.rule_metrics = [keras.metrics.Mean(name=n) for n in self.rule.reported_losses(self.network_config)]

    @property
    def trackers(self):
        return self.network_config.trackers

    @property
    def weighted_layers(self):
        """The weighted layers in order (Conv2D, Dense): the hidden ones, then the output layer."""
        return [b.dense for b in self.blocks] + [self.output_layer]

    @property
    def feedback_matrices(self):
        """The fixed feedback matrices (Keras variables): the layers' own (FA, kernel-shaped), then the
        projections' (direct rules, one per hidden layer); none for bp."""
        own = [layer.feedback for layer in self.weighted_layers if getattr(layer, "feedback", None) is not None]
        return own + [p.feedback for p in self.projections]

    def forward(self, x, training=None, rule=True):
        raise NotImplementedError

    def _stateful_layers(self):
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        _, z = self.forward(inputs, training=training, rule=False)
        return self._output_activation(z)

    def hidden_activations(self, x):
        """[h_1, ..., h_L] in inference mode (for histograms and analysis)."""
        hidden, _ = self.forward(x, training=False, rule=False)
        return hidden

    # ----------------------------------------------------------------------------------- training
    def default_loss(self):
        return "categorical_crossentropy" if self.network_config.problem_type == "classification" else "mse"

    def projected_forward(self, x, training=None):
        """(hidden, z, what the projections read): the rule-wired `forward`, and the activities p_l = a_l B_l
        projects — the hidden ones themselves, unless a model projects something else (`Network` under
        ``project_before_pool``: the blocks' maps before their poolings)."""
        hidden, z = self.forward(x, training=training, rule=True)
        return hidden, z, hidden

    def forward_pass(self, x, y, sample_weight=None, training=True):
        """The forward pass wired for the rule, with the global loss: a `ForwardPass` (what the rule's
        `local_losses` read). The loss head runs under its own tape so that a rule may ask for ∂L/∂z."""
        hidden, z, projected = self.projected_forward(x, training=training)
        projections = [proj(h) for proj, h in zip(self.projections, projected)]
        with tf.GradientTape(watch_accessed_variables=False) as head:
            z = self.rule.output_preactivation(z, projections)
            head.watch(z)
            y_pred = self._output_activation(z)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return ForwardPass(self, x, y, sample_weight, hidden, z, y_pred, loss, projections=projections,
                           head_tape=head)

    def bp_objective(self, x, y, sample_weight=None):
        return self.compute_loss(x=x, y=y, y_pred=self(x, training=True), sample_weight=sample_weight, training=True)

    @property
    def bp_cosine_kernels(self):
        return [b.dense.kernel for b in self.blocks]

    def _replayable_state(self):
        # The dropout seed-generator states and batch-norm moving statistics, and brSF's draw counters
        # (the output layer's too): not the feedback matrices, not the rule's own layers (whose noise
        # must not repeat from step to step).
        fixed = {id(b) for b in self.feedback_matrices}
        return [v for layer in self._stateful_layers() for v in layer.non_trainable_variables if id(v) not in fixed]
