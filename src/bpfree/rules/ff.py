"""Forward-Forward (Hinton 2022, "The Forward-Forward Algorithm: Some Preliminary Investigations",
arXiv 2212.13345), supervised, as in the reference implementation github.com/mpezeshki/pytorch_forward_forward.

Each hidden layer l has a goodness per example, the mean of its squared activities,
    g_l(h) = (1/n_l) Σ_j h_j²
(Hinton's sum of squares divided by the width, so that one threshold θ fits every width). Positive
data is x with its true label embedded, negative data x with a wrong label (drawn uniformly among the
others, from the model's seed); the label is embedded by appending its one-hot code to x. Every layer
sees its input detached and normalised to unit length, u = sg(h_{l−1}) / (‖h_{l−1}‖ + ε), so its
goodness says nothing about the goodness below, h_l = f(u W_l + b_l), and it learns on its own loss
    ℓ_l = ½ (mean_n softplus(θ − g_l(h_l⁺)) + mean_n softplus(g_l(h_l⁻) − θ)),
pushing positive goodness above θ and negative goodness below (the reference's mean of
log(1 + exp(·)) over the 2N examples). One optimizer step on Σ_l ℓ_l (+ weight decay) per batch.

Prediction: the label c with the highest total goodness G_c(x) = Σ_l g_l(h_l) over all layers for x
with c embedded; the model returns softmax(G) over labels, so the compiled loss and ``error_rate`` read
it like class probabilities. These rules train their own model (`bpfree.models.ff.FFNetwork`, kind "ff").
"""

import keras

from bpfree.rules.base import Rule, number
from bpfree.rules.registry import register

EPSILON = 1e-4  # added to the norm of a layer's input (the reference's)


@register
class ForwardForward(Rule):
    name = "ff"
    summary = "Forward-Forward: each layer pushes goodness up on true-label data, down on wrong-label data (own model)"
    model = "ff"
    search_values = {"threshold": (1.0, 2.0, 5.0)}

    def __init__(self, threshold=2.0):
        self.threshold = number(self.name, "threshold", threshold, lambda v: v > 0, "a goodness threshold > 0")

    @staticmethod
    def normalise(h):
        """h / (‖h‖ + ε) per example: a layer's input carries its direction only."""
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(h), axis=-1, keepdims=True))
        return h / (norm + EPSILON)

    @staticmethod
    def goodness(h):
        """g(h) = mean_j h_j², one value per example."""
        return keras.ops.mean(keras.ops.square(h), axis=-1)

    def layer_loss(self, g_pos, g_neg):
        """ℓ = ½ (mean softplus(θ − g⁺) + mean softplus(g⁻ − θ))."""
        return 0.5 * (keras.ops.mean(keras.ops.softplus(self.threshold - g_pos))
                      + keras.ops.mean(keras.ops.softplus(g_neg - self.threshold)))
