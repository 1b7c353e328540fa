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
The output layer uses the modulated pass's error eᵉʳʳ (the authors' fully connected code), or the first
pass's e (``output_error``, below). The paper's networks have no biases; the bias terms above are the
same rule with a constant input of 1.

Surrogate (one gradient call): the global loss carries no gradient (`output_preactivation` stops z;
weight decay still applies), and
    J = Σ_l Σ sg((h_l − h_lᵉʳʳ)/N) ⊙ (sg(h_{l−1}ᵉʳʳ) W_l + b_l) + Σ sg(eᵉʳʳ/N) ⊙ (sg(h_Lᵉʳʳ) W_{L+1} + b_{L+1}).
The second pass is the plain network (`Network.forward(..., rule=False)`) run inside `local_losses`;
dropout and batch norm are refused (both passes must see the same network).

On a convolution block (h_l and h_lᵉʳʳ taken before the block's pooling, f(a_l) and f(a_lᵉʳʳ): the
activities the kernel produced; P = H_out·W_out the convolution's output positions) ``conv_update``
chooses between two updates:
- ``"official"`` (the default): the authors' conv code (`compute_delta_w_conv` in models.py, applied in
  main_pytorch.py): per position, the batch mean of (h_l − h_lᵉʳʳ) ⊗ the input patch of the modulated pass,
  summed over positions and divided by P, then applied as w += η Δw / N with the opposite sign to their
  fully connected layers (w += η·(−Δw)/N there):
      ∇W_l = −Conv2DBackpropFilter(h_{l−1}ᵉʳʳ, h_l − h_lᵉʳʳ) / (N²·P),   ∇b_l = −Σ_{n,p} (h_l − h_lᵉʳʳ) / (N²·P)
  (their convolutions have no bias; ours gets the same rule with a constant input of 1).
- ``"surrogate"``: the dense rule applied to a convolution, the gradient of the surrogate J above:
      ∇W_l = Conv2DBackpropFilter(h_{l−1}ᵉʳʳ, h_l − h_lᵉʳʳ) / N   (−N·P times ``"official"``).
Why both: ``"surrogate"`` (bpfree's conv update before the option existed) is the same learning rule as
PEPITA's dense layers (same sign, one batch mean); ``"official"`` is what the published conv result used (one conv layer and a readout, 56.3 % on
CIFAR-10 vs BP 65.0 %). With it a conv kernel barely moves (on Fashion-MNIST, their net and optimizer,
5 epochs: by ~10⁻⁵ of its norm, and the accuracy is a frozen conv's under bp to 0.1 %; README): the net
is fixed random conv features under a PEPITA-trained readout. The authors' `--sqrt_conv` (÷√P) is not
offered. A network without convolution blocks refuses ``conv_update="surrogate"`` (it would change nothing).

``output_error="auto"`` (the default) is the authors' choice per network: their conv code trains a readout
that reads a conv block directly from the first pass's error e (``"first"``), their fully connected
code from eᵉʳʳ (``"modulated"``); so "auto" is "first" when the last hidden block is a convolution
block and "modulated" otherwise (dense nets, and conv nets with dense hidden layers, as in their code).
``f_scale`` must be > 0: with F = 0 the two passes coincide and the hidden layers never learn.
"""

import keras
import tensorflow as tf

from bpfree import checks, seeds
from bpfree.forward_pass import weighted_preactivation
from bpfree.layers.input_feedback import InputFeedback
from bpfree.rules.base import Rule, number
from bpfree.rules.registry import register

OUTPUT_ERRORS = ("auto", "modulated", "first")
CONV_UPDATES = ("official", "surrogate")


@register
class PEPITA(Rule):
    name = "pepita"
    summary = "PEPITA: a second forward pass on the input perturbed by the error; updates from activity differences"
    detach_blocks = True
    convolutional = True
    search_values = {"f_scale": (0.01, 0.05, 0.1), "output_error": ("modulated", "first")}

    def __init__(self, f_scale=0.05, output_error="auto", conv_update="official"):
        self.f_scale = number(self.name, "f_scale", f_scale, lambda v: v > 0,
                              "a scale > 0 (0 would give the hidden layers no feedback)")
        self.output_error = checks.choice("output_error", output_error, OUTPUT_ERRORS, owner=self.name)
        self.conv_update = checks.choice("conv_update", conv_update, CONV_UPDATES, owner=self.name)

    def validate(self, config):
        for what, value, default in (("batchnorm", config.batchnorm, False), ("dropout", config.dropout, 0.0)):
            if value != default:
                raise ValueError(f"{self.name} does not support {what}={value!r} (only {default!r}): "
                                 "its two forward passes must see the same network.")
        if self.conv_update != "official" and not config.is_conv:
            raise ValueError(f"{self.name}'s conv_update={self.conv_update!r} changes nothing on a network without "
                             "convolution blocks (valid there: 'official', the default).")

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
            if self.conv_update == "official" and len(a_err.shape) == 4:  # −1/(N·P) times the surrogate's
                delta = -delta / (n * float(a_err.shape[1] * a_err.shape[2]))
            losses[f"pepita_{l}"] = keras.ops.sum(delta * a_err)
        if self.resolved_output_error(model) == "modulated":
            e_top = sg(self._loss_gradient(forward, sg(z_err)))
        else:
            e_top = e
        out = weighted_preactivation(model.output_layer, inputs_err[-1])
        losses["pepita_output"] = keras.ops.sum(e_top * out)
        return losses

    def resolved_output_error(self, model):
        """"modulated" or "first": ``output_error``, with "auto" resolved for `model` (the module docstring)."""
        if self.output_error != "auto":
            return self.output_error
        reads_conv = bool(model.blocks) and len(model.blocks[-1].dense.kernel.shape) == 4
        return "first" if reads_conv else "modulated"

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
