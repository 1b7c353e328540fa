"""`ForwardPass`: one forward pass of a model wired for its rule, with the global loss — what a rule reads.

Models build it (`RuleModel.forward_pass`); rules turn it into their surrogate terms
(`Rule.local_losses`). It lives outside `models/` and `rules/` so that both can use it without
importing each other.
"""

import keras

from bpfree.layers.feedback import flatten


class ForwardPass:
    """One forward pass of a model wired for its rule, with the global loss.

    - ``inputs``: the inputs of the weighted layers [x, h_1, ..., h_L] (h_L feeds the output layer);
    - ``hidden``: [h_1, ..., h_L]; ``z``: the output pre-activation (after the rule's
      `output_preactivation`); ``projections``: [h_l B_l] (direct rules); ``y_pred``, ``loss``;
    - ``preactivations``: [a_1, ..., a_L], a_l = sg(h_{l−1}) W_l + b_l, or conv(sg(h_{l−1}), W_l) + b_l
      (each weighted layer's output, before any batch norm or pooling), given by the model or computed
      on first use from its blocks;
    - ``output_error()``: e = ∂L/∂z, taken from a tape on the loss head alone (z → ŷ → L, a few ops;
      no backward pass through the network), computed on first use.
    """

    def __init__(self, model, x, y, sample_weight, hidden, z, y_pred, loss, *, projections=(), head_tape=None,
                 preactivations=None):
        self.model = model
        self.x = x
        self.y = y
        self.sample_weight = sample_weight
        self.hidden = list(hidden)
        self.z = z
        self.projections = list(projections)
        self.y_pred = y_pred
        self.loss = loss
        self._head_tape = head_tape
        self._output_error = None
        self._preactivations = preactivations

    @property
    def inputs(self):
        return [self.x] + self.hidden

    @property
    def batch_size(self):
        return keras.ops.shape(self.x)[0]

    @property
    def preactivations(self):
        if self._preactivations is None:
            self._preactivations = [weighted_preactivation(block.dense, keras.ops.stop_gradient(h))
                                    for block, h in zip(self.model.blocks, self.inputs)]
        return self._preactivations

    def output_error(self):
        if self._output_error is None:
            self._output_error = keras.ops.stop_gradient(self._head_tape.gradient(self.loss, self.z))
        return self._output_error


def weighted_preactivation(layer, h):
    """h W + b for a Dense layer, conv(h, W) + b for a Conv2D (its kernel and bias, no activation, no
    custom backward)."""
    if len(layer.kernel.shape) == 4:
        a = keras.ops.conv(h, layer.kernel, strides=layer.strides, padding=layer.padding)
    else:
        a = keras.ops.matmul(flatten(h) if len(h.shape) > 2 else h, layer.kernel)
    return a + layer.bias if layer.bias is not None else a
