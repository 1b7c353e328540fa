"""PEPITA: present the error to perturb the input to modulate activity (Dellaferrera & Kreiman 2022,
ICML, arXiv 2201.11665), as in the authors' code (github.com/GiorgiaD/PEPITA).

No backward pass: a second forward pass runs on the input perturbed by the output error through a
fixed random F of shape (input_dim, output_dim) (`bpfree.layers.InputFeedback`, uniform in
±f_scale·√(6/input_dim)):
    first pass      h_0 = x,                 h_l = f(h_{l−1} W_l + b_l),     e = N ∂L/∂z   (ŷ − y for softmax + CE)
    modulated pass  h_0ᵉʳʳ = x + e Fᵀ,       h_lᵉʳʳ = f(h_{l−1}ᵉʳʳ W_l + b_l), eᵉʳʳ = N ∂L/∂z at zᵉʳʳ
and, with N the batch size (the code divides by it),
    hidden l:  ∇W_l = h_{l−1}ᵉʳʳᵀ (h_l − h_lᵉʳʳ) / N,   ∇b_l = mean_n (h_l − h_lᵉʳʳ),
    output:    ∇W_{L+1} = h_Lᵉʳʳᵀ eᵉʳʳ / N,           ∇b_{L+1} = mean_n eᵉʳʳ.
The output layer uses the modulated pass's error eᵉʳʳ, as the authors' code does; ``output_error="first"``
uses the first pass's e instead. The paper's networks have no biases; the bias terms above are the
same rule with a constant input of 1.

Surrogate (one gradient call): the global loss carries no gradient (`output_preactivation` stops z;
weight decay still applies), and
    J = Σ_l Σ sg((h_l − h_lᵉʳʳ)/N) ⊙ (sg(h_{l−1}ᵉʳʳ) W_l + b_l) + Σ sg(eᵉʳʳ/N) ⊙ (sg(h_Lᵉʳʳ) W_{L+1} + b_{L+1}).
The second pass is the plain network (`Network.forward(..., rule=False)`) run inside `local_losses`;
dropout and batch norm are refused (both passes must see the same network).

On a convolution block the same surrogate gives ∇W_l = Conv2DBackpropFilter(h_{l−1}ᵉʳʳ, (h_l − h_lᵉʳʳ)/N)
(the convolution's weight gradient with the activity difference as its error), and F carries e to
the image (H·W·C rows, reshaped). Where the block pools, h_l and h_lᵉʳʳ are taken before the pooling
(f(a_l), f(a_lᵉʳʳ): the activities the kernel produced).
"""

import keras
import tensorflow as tf

from bpfree import checks, seeds
from bpfree.forward_pass import weighted_preactivation
from bpfree.layers.input_feedback import InputFeedback
from bpfree.rules.base import Rule, number
from bpfree.rules.registry import register

OUTPUT_ERRORS = ("modulated", "first")


@register
class PEPITA(Rule):
    name = "pepita"
    summary = "PEPITA: a second forward pass on the input perturbed by the error; updates from activity differences"
    detach_blocks = True
    convolutional = True
    search_values = {"f_scale": (0.01, 0.05, 0.1), "output_error": OUTPUT_ERRORS}

    def __init__(self, f_scale=0.05, output_error="modulated"):
        self.f_scale = number(self.name, "f_scale", f_scale, lambda v: v >= 0, "a scale ≥ 0")
        self.output_error = checks.choice("output_error", output_error, OUTPUT_ERRORS, owner=self.name)

    def validate(self, config):
        for what, value, default in (("batchnorm", config.batchnorm, False), ("dropout", config.dropout, 0.0)):
            if value != default:
                raise ValueError(f"{self.name} does not support {what}={value!r} (only {default!r}): "
                                 "its two forward passes must see the same network.")

    def build_layers(self, config):
        """[F]: the fixed input feedback, seeded from the network's seed."""
        f = InputFeedback(config.input_dim, scale=self.f_scale, seed=seeds.pepita_input_feedback(config.seed),
                          name="input_feedback")
        f.build((None, config.output_dim))
        return [f]

    def output_preactivation(self, z, projections):
        return keras.ops.stop_gradient(z)  # the global loss is reported, not followed

    def local_losses(self, forward):
        model = forward.model
        F = model.rule_layers[0]
        n = keras.ops.cast(forward.batch_size, forward.z.dtype)
        sg = keras.ops.stop_gradient
        e = forward.output_error()  # ∂L/∂z = e / N
        x_err = sg(forward.x + F(e * n))
        hidden_err, z_err = model.forward(x_err, training=True, rule=False)
        inputs_err = [x_err] + [sg(h) for h in hidden_err]
        losses = {}
        for l, (block, h, h_err) in enumerate(zip(model.blocks, forward.hidden, hidden_err), start=1):
            a_err = weighted_preactivation(block.dense, inputs_err[l - 1])
            if getattr(block, "pools", ()):  # the difference of the unpooled activities (see the docstring)
                h, h_err = block.act(forward.preactivations[l - 1]), block.act(a_err)
            delta = sg(h - h_err) / n
            losses[f"pepita_{l}"] = keras.ops.sum(delta * a_err)
        if self.output_error == "modulated":
            e_top = sg(self._loss_gradient(forward, sg(z_err)))
        else:
            e_top = e
        out = weighted_preactivation(model.output_layer, inputs_err[-1])
        losses["pepita_output"] = keras.ops.sum(e_top * out)
        return losses

    @staticmethod
    def _loss_gradient(forward, z):
        """∂L/∂z of the model's loss at the output pre-activation z (the head only: z → ŷ → L)."""
        model = forward.model
        activation = keras.activations.get(model.network_config.output_activation)
        with tf.GradientTape(watch_accessed_variables=False) as head:
            head.watch(z)
            y_pred = activation(z)
            loss = model.compute_loss(x=forward.x, y=forward.y, y_pred=y_pred, sample_weight=forward.sample_weight,
                                      training=True)
        return head.gradient(loss, z)
