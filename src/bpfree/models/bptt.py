"""Forward roll-outs of a chain of `GLEDense` layers, and truncated BPTT through them.

A chain of layers l = 0 … L−1 runs the forward dynamics alone (`bpfree.layers.gle.gle_forward_step`:
ê = 0, no error neurons), all layers from the old state of every layer at each dt step:

    r_in,0 = x_t,   r_in,l = r_{l−1} (old),   state_l ← gle_forward_step(params_l, state_l, r_in,l)

and the output at step t is the *old* top rate r_{L−1}, the one a GLE student compares with its target
at that step (`bpfree.models.gle.GLENetwork`), so a teacher's outputs y_t and a student's outputs line up.

Truncated BPTT (the seed's `use_autodiff=True` students): the time axis is cut into windows of K steps;
in each window the loss

    L_w = scale · Σ_{t ∈ w} mean_n Σ_k loss(y_t − r_{L−1,t})_{n,k}      (`half_mse`: ½(y−r)², `mse`: mean (y−r)²)

is differentiated by autodiff through the window's forward dynamics (weights and τ_m), with the state
entering the window treated as a constant, and the optimizer takes one step per window. The seed's
LagLine sums the per-step MSE (scale 1) and raises the learning rate by K; its LagNet adjoint
integrates ½(y − r)² over time (scale dt). The seed's LagLine BPTT student also nudges its membranes
with γ·β(y − r) errors; here the BPTT students run the forward dynamics alone (β = 0.01 there).

Everything is compiled: one call runs a chunk of steps (a whole number of windows) in an XLA
`tf.while_loop` over windows, each window an inner `tf.while_loop` over steps under a `GradientTape`.
"""

import tensorflow as tf

from bpfree import checks
from bpfree.layers.gle import GLEParams, gle_forward_step

LOSSES = ("mse", "half_mse")


def params_of(layer):
    """The layer's `GLEParams` as tensors read now (inside a tape, reads of watched variables are recorded)."""
    return GLEParams(*(None if p is None else tf.convert_to_tensor(p) for p in layer.params()))


def forward_chain(params, states, x_t, layers):
    """One dt step of the chain's forward dynamics: (new states, the old top rate)."""
    new = []
    for l, layer in enumerate(layers):
        r_in = x_t if l == 0 else states[l - 1].r
        new.append(gle_forward_step(params[l], states[l], r_in, layer.config))
    return new, states[-1].r


def step_loss(name, y, r):
    """Mean over the batch of the per-example loss of one step."""
    diff = y - r
    if name == "mse":
        return tf.reduce_mean(tf.square(diff))
    return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=-1))


def _time_major(x):
    x = tf.convert_to_tensor(x, "float32")
    return tf.transpose(x, (1, 0, 2))


class ForwardChain:
    """A fixed chain (a teacher) run forward chunk after chunk; its state lives in the layers' variables.

    `outputs(x)` takes x of shape (batch, steps, in) and returns the per-step old top rates (batch, steps, out)
    and commits the chain's state at the end of the chunk.
    """

    def __init__(self, layers, jit_compile=True):
        self.layers = list(layers)
        self._fn = tf.function(self._outputs, jit_compile=jit_compile, autograph=False)

    def outputs(self, x):
        return self._fn(x)

    def _outputs(self, x):
        xs = _time_major(x)
        steps, n = tf.shape(xs)[0], tf.shape(xs)[1]
        params = [params_of(layer) for layer in self.layers]
        out_dim = self.layers[-1].units
        ys = tf.TensorArray("float32", size=steps, element_shape=tf.TensorShape([None, out_dim]))

        def body(t, states, ys):
            states, y = forward_chain(params, states, xs[t], self.layers)
            return t + 1, states, ys.write(t, y)

        init = (tf.constant(0), [layer.state(n) for layer in self.layers], ys)
        _, states, ys = tf.while_loop(lambda t, *_: t < steps, body, init)
        for layer, state in zip(self.layers, states):
            layer.assign_state(state)
        return tf.transpose(ys.stack(), (1, 0, 2))


class TruncatedBPTT:
    """Truncated-BPTT training of the trainable variables of a chain of `GLEDense` layers.

    Args:
        layers: the student chain, bottom to top; its kernels / biases / τ_m with ``trainable`` True
            learn (τ_m only where the layer has ``learn_tau``); constraints (the τ_m clamp) are applied
            by the optimizer after every update.
        optimizer: a Keras optimizer (built here).
        window: K, the truncation in dt steps; one optimizer step per window.
        loss: "mse" or "half_mse" per step (module docstring); ``scale`` multiplies the window's sum.
    """

    def __init__(self, layers, optimizer, window, *, loss="mse", scale=1.0, jit_compile=True):
        checks.choice("BPTT loss", loss, LOSSES)
        checks.whole("truncation window", window, lambda v: v >= 1, "a positive number of steps")
        self.layers = list(layers)
        self.window = int(window)
        self.loss, self.scale = loss, float(scale)
        self.variables = [v for layer in self.layers for v in self._trainable(layer)]
        if not self.variables:
            raise ValueError("TruncatedBPTT: the chain has no trainable variables.")
        self.optimizer = optimizer
        self.optimizer.build(self.variables)
        self._train = tf.function(self._train_chunk, jit_compile=jit_compile, autograph=False)
        self._forward = ForwardChain(self.layers, jit_compile=jit_compile)

    @staticmethod
    def _trainable(layer):
        out = [layer.kernel] + ([layer.bias] if layer.use_bias else [])
        if layer.learn_tau:
            out.append(layer.tau_m)
        return [v for v in out if v.trainable]

    def run(self, x, y):
        """Trains on one chunk: x (batch, steps, in), targets y (batch, steps, out), steps a multiple of
        the window. Returns the mean per-step loss over the chunk (mean batch MSE, whatever `loss`)."""
        steps = int(x.shape[1])
        if steps % self.window:
            raise ValueError(f"Chunk of {steps} steps is not a whole number of {self.window}-step windows.")
        return self._train(x, y)

    def forward(self, x, y):
        """Runs the chunk without learning (commits the state); returns the mean per-step MSE."""
        out = self._forward.outputs(x)
        return tf.reduce_mean(tf.square(tf.convert_to_tensor(y, "float32") - out))

    def _train_chunk(self, x, y):
        xs, ys = _time_major(x), _time_major(y)
        steps, n = xs.shape[0], tf.shape(xs)[1]
        windows, K = steps // self.window, self.window
        layers, variables = self.layers, self.variables

        def window_body(w, states, mse_sum):
            with tf.GradientTape() as tape:
                params = [params_of(layer) for layer in layers]

                def step_body(t, states, loss_sum, mse_sum):
                    i = w * K + t
                    states, r = forward_chain(params, states, xs[i], layers)
                    return (t + 1, states, loss_sum + step_loss(self.loss, ys[i], r),
                            mse_sum + tf.reduce_mean(tf.square(ys[i] - r)))

                _, new_states, loss_sum, w_mse = tf.while_loop(
                    lambda t, *_: t < K, step_body, (tf.constant(0), states, tf.constant(0.0), tf.constant(0.0)),
                    maximum_iterations=K)
                loss = self.scale * loss_sum
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads, variables)
            new_states = tf.nest.map_structure(tf.stop_gradient, new_states)
            return w + 1, new_states, mse_sum + w_mse

        init = (tf.constant(0), [layer.state(n) for layer in layers], tf.constant(0.0))
        _, states, mse_sum = tf.while_loop(lambda w, *_: w < windows, window_body, init, maximum_iterations=windows)
        for layer, state in zip(layers, states):
            layer.assign_state(state)
        return mse_sum / steps

