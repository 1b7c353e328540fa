"""The students of a teacher–student run: each runs one chunk (x, per-step targets y) and returns its loss.

- `GLEStudent`: a `GLENetwork` over the student's layers, one optimizer step at every dt inside its
  compiled time loop (GLE's prospective errors, or instantaneous errors ê = ε with layers in mode "bp").
- `BPTTStudent`: truncated BPTT through the forward dynamics (`bpfree.models.bptt.TruncatedBPTT`), one
  optimizer step per window.

Before `start_learning` a student runs without learning: the GLE student runs its full dynamics (error
neurons included) with a zero learning rate, the BPTT student runs forward only.
"""

from bpfree.models.bptt import TruncatedBPTT
from bpfree.models.gle import GLENetwork


class GLEStudent:
    """A GLE (or instantaneous-error) student; `start_learning` compiles a fresh optimizer
    `make_optimizer(learning_rate)` (before it, `make_optimizer(0.0)`)."""

    def __init__(self, layers, beta, make_optimizer, learning_rate):
        self.make_optimizer, self.learning_rate = make_optimizer, learning_rate
        self.net = GLENetwork(layers, layers[0].input_dim, loss="mse", beta=beta, input_mode="sequence")
        self._compile(0.0)

    def _compile(self, lr):
        self.net.compile(optimizer=self.make_optimizer(lr), jit_compile=False)

    def start_learning(self):
        self._compile(self.learning_rate)

    @property
    def optimizer(self):
        """The optimizer now compiled in (lr 0 before `start_learning`)."""
        return self.net.optimizer

    def run(self, x, y):
        """One chunk (x: (batch, steps, in), per-step targets y): the mean per-step MSE."""
        return float(self.net.train_on_batch(x, y, return_dict=True)["loss"])


class BPTTStudent:
    """A truncated-BPTT student over `layers` (`TruncatedBPTT`'s arguments)."""

    def __init__(self, layers, optimizer, window, loss="mse", scale=1.0):
        self.trainer = TruncatedBPTT(layers, optimizer, window, loss=loss, scale=scale)
        self.learning = False

    def start_learning(self):
        self.learning = True

    @property
    def optimizer(self):
        return self.trainer.optimizer

    def run(self, x, y):
        """One chunk: the mean per-step MSE (trained on from `start_learning` on)."""
        return float((self.trainer.run if self.learning else self.trainer.forward)(x, y))
