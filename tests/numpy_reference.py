"""Numpy references (float64, no TensorFlow) the exactness tests share: softmax heads and their
vector–Jacobian product, brSF's counter-based draw, `assert_updates`, and what convolutional networks
compute: 'same'-padded 2-D
convolution with its two vector–Jacobian products, max and average pooling with their backward passes,
TensorFlow's 'same' average pooling (padding left out of the count), and a small network of conv/dense
blocks with tanh, forward and backward. Shapes are channels last: x (N, H, W, C), kernels (k, k, C_in, C_out).

TensorFlow's SAME padding: out = ⌈H/s⌉, total pad = max((out − 1)·s + k − H, 0), pad_top = total // 2
(the extra row, when total is odd, goes to the bottom).
"""

import math

import numpy as np


def same_pads(size, k, s):
    """(out, pad_before, pad_after) of TensorFlow's SAME padding along one axis."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def _padded(x, k, s):
    n, h, w, c = x.shape
    ho, top, bottom = same_pads(h, k, s)
    wo, left, right = same_pads(w, k, s)
    xp = np.zeros((n, h + top + bottom, w + left + right, c))
    xp[:, top:top + h, left:left + w, :] = x
    return xp, (ho, wo), (top, left)


def _window(xp, a, b, s, ho, wo):
    """The (N, ho, wo, C) entries xp[:, i·s + a, j·s + b, :] that kernel tap (a, b) multiplies."""
    return xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s, :]


def conv2d(x, kernel, s):
    """out[n, i, j, o] = Σ_{a, b, c} xp[n, i·s + a, j·s + b, c] kernel[a, b, c, o] (xp: x zero-padded, SAME)."""
    k = kernel.shape[0]
    xp, (ho, wo), _ = _padded(x, k, s)
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for a in range(k):
        for b in range(k):
            out += np.einsum("nijc,co->nijo", _window(xp, a, b, s, ho, wo), kernel[a, b])
    return out


def conv2d_input_grad(delta, kernel, s, input_shape):
    """∂⟨conv2d(x, kernel), δ⟩/∂x: the transposed convolution of δ with `kernel` (cropped to x's shape)."""
    k = kernel.shape[0]
    xp, (ho, wo), (top, left) = _padded(np.zeros(input_shape), k, s)
    assert delta.shape[1:3] == (ho, wo)
    for a in range(k):
        for b in range(k):
            xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s, :] += np.einsum("nijo,co->nijc", delta,
                                                                                      kernel[a, b])
    return xp[:, top:top + input_shape[1], left:left + input_shape[2], :]


def conv2d_kernel_grad(x, delta, s, k):
    """∂⟨conv2d(x, W), δ⟩/∂W: dW[a, b, c, o] = Σ_{n, i, j} xp[n, i·s + a, j·s + b, c] δ[n, i, j, o]."""
    xp, (ho, wo), _ = _padded(x, k, s)
    grad = np.zeros((k, k, x.shape[3], delta.shape[3]))
    for a in range(k):
        for b in range(k):
            grad[a, b] = np.einsum("nijc,nijo->co", _window(xp, a, b, s, ho, wo), delta)
    return grad


# ------------------------------------------------------------------------------------------- pooling
def _windows(x, p):
    """'valid' windows of p×p with stride p: (N, H//p, W//p, p·p, C), row-major inside a window."""
    n, h, w, c = x.shape
    ho, wo = h // p, w // p
    t = x[:, :ho * p, :wo * p, :].reshape(n, ho, p, wo, p, c).transpose(0, 1, 3, 2, 4, 5)
    return t.reshape(n, ho, wo, p * p, c)


def _unwindow(t, p, shape):
    n, ho, wo, _, c = t.shape
    out = np.zeros(shape)
    out[:, :ho * p, :wo * p, :] = t.reshape(n, ho, wo, p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, ho * p, wo * p, c)
    return out


def max_pool(x, p):
    return _windows(x, p).max(axis=3)


def max_pool_backward(x, p, g):
    """The gradient g of the pooled map goes to each window's maximum (rows/columns left over get 0)."""
    t = _windows(x, p)
    winner = t.argmax(axis=3)
    routed = np.zeros_like(t)
    np.put_along_axis(routed, winner[:, :, :, None, :], g[:, :, :, None, :], axis=3)
    return _unwindow(routed, p, x.shape)


def avg_pool(x, p):
    return _windows(x, p).mean(axis=3)


def avg_pool_backward(shape, p, g):
    n, h, w, c = shape
    t = np.broadcast_to(g[:, :, :, None, :] / (p * p), (n, h // p, w // p, p * p, c))
    return _unwindow(t, p, shape)


POOL = {"max": max_pool, "average": avg_pool}


def pool_backward(kind, x, p, g):
    return max_pool_backward(x, p, g) if kind == "max" else avg_pool_backward(x.shape, p, g)


def _same_pool_cells(size, p):
    """For 'same' pooling with window = stride = p along an axis of `size`: the input indices of each cell."""
    out, before, _ = same_pads(size, p, p)
    return [[i for i in range(o * p - before, o * p - before + p) if 0 <= i < size] for o in range(out)]


def avg_pool_same(x, p):
    """TensorFlow's 'same' average pooling (window = stride = p): the mean of the cell's real entries
    (padding is not counted)."""
    rows, cols = _same_pool_cells(x.shape[1], p), _same_pool_cells(x.shape[2], p)
    out = np.zeros((x.shape[0], len(rows), len(cols), x.shape[3]))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[:, i, j, :] = x[:, r][:, :, c].mean(axis=(1, 2))
    return out


def avg_pool_same_backward(shape, p, g):
    rows, cols = _same_pool_cells(shape[1], p), _same_pool_cells(shape[2], p)
    out = np.zeros(shape)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[:, r[0]:r[-1] + 1, c[0]:c[-1] + 1, :] += g[:, i, j, None, None, :] / (len(r) * len(c))
    return out


# ------------------------------------------------------------------------------------------- heads
def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_vjp(q, dq):
    """Gradient w.r.t. the logits of a softmax output q, given the gradient dq w.r.t. q."""
    return q * (dq - np.sum(dq * q, axis=1, keepdims=True))


def hash_uniform(shape, seed, step):
    """brSF's U[0, 1) draw: a 32-bit multiply–xorshift hash of (row-major index, seed, step)."""
    m = (1 << 32) - 1
    x = (np.arange(int(np.prod(shape)), dtype=np.uint64) + np.uint64(seed * 0x3C6EF372 + step * 0x1B873593)) \
        & np.uint64(m)
    for c in (0x2C1B3C6D, 0x297A2D39, 0x1B873593):
        x = ((x ^ (x >> np.uint64(16))) * np.uint64(c)) & np.uint64(m)
    x = x ^ (x >> np.uint64(16))
    return ((x >> np.uint64(8)).astype(np.float64) / 2**24).reshape(shape)


# ------------------------------------------------------------------------------------------- networks
class Conv:
    """A block: conv(filters, kernel, stride) 'same' → tanh → poolings (("max" | "average", p), ...)."""

    def __init__(self, filters, kernel, stride=1, pools=()):
        self.filters, self.kernel, self.stride, self.pools = filters, kernel, stride, tuple(pools)


class Dense:
    def __init__(self, units):
        self.units = units


class Net:
    """A numpy network of `blocks` (Conv / Dense, tanh) and a dense output layer; params [(W, b), ...]."""

    def __init__(self, blocks, params):
        self.blocks = list(blocks)
        self.params = list(params)

    def forward(self, x):
        """(cache, z): per hidden block {"input", "a", "f" (f(a)), "pooled" (each pooling's input), "out"}."""
        cache, h = [], x
        for block, (W, b) in zip(self.blocks, self.params):
            if isinstance(block, Conv):
                a = conv2d(h, W, block.stride) + b
            else:
                a = h.reshape(len(h), -1) @ W + b
            f = np.tanh(a)
            out, pooled = f, []
            for kind, p in getattr(block, "pools", ()):
                pooled.append(out)
                out = POOL[kind](out, p)
            cache.append({"input": h, "a": a, "f": f, "pooled": pooled, "out": out})
            h = out
        W, b = self.params[-1]
        return cache, h.reshape(len(h), -1) @ W + b

    def delta(self, l, c, g):
        """δ_l = ∂/∂a_l from g = ∂/∂h_l (h_l the block's output, any shape with its entries in order)."""
        g = g.reshape(c["out"].shape)
        for (kind, p), inp in reversed(list(zip(getattr(self.blocks[l], "pools", ()), c["pooled"]))):
            g = pool_backward(kind, inp, p, g)
        return g * (1 - c["f"] ** 2)

    def kernel_grads(self, l, inp, delta):
        """(∂/∂W_l, ∂/∂b_l) for δ_l at layer l (0-based; len(blocks) is the output layer) with input `inp`."""
        block = self.blocks[l] if l < len(self.blocks) else None
        if isinstance(block, Conv):
            return conv2d_kernel_grad(inp, delta, block.stride, block.kernel), delta.sum(axis=(0, 1, 2))
        return inp.reshape(len(inp), -1).T @ delta, delta.sum(axis=0)

    def input_grad(self, l, kernel, delta, input_shape):
        """δ_l sent down to layer l's input through `kernel` (W_l for backprop, B_l for the FA family)."""
        block = self.blocks[l] if l < len(self.blocks) else None
        if isinstance(block, Conv):
            return conv2d_input_grad(delta, kernel, block.stride, input_shape)
        return (delta @ kernel.T).reshape(input_shape)


def assert_updates(dW, db, exp_dW, exp_db):
    """Every kernel update (and bias update, unless `db` is None) equals the formula's, rtol 1e-5; a
    vanishing expected kernel update fails (it would test nothing)."""
    for l, (got, want) in enumerate(zip(dW, exp_dW), start=1):
        assert np.abs(want).max() > 1e-4, f"layer {l}: a vanishing update tests nothing"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"kernel of layer {l}")
    if db is not None:
        for l, (got, want) in enumerate(zip(db, exp_db), start=1):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"bias of layer {l}")
