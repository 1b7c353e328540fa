"""A float64 numpy CIFAR ResNet (ResNet-(6n+2), option-A shortcuts), forward and backward on one batch, written
from PyTorch's definitions as biotorch uses them (biotorch/models/small_resnet.py; its FA / uSF layers in
biotorch/layers/fa_constructor/{conv,linear}.py and biotorch/autograd/fa/{conv,linear}.py). No TensorFlow.

Channels last, x (N, H, W, C); kernels (k, k, C_in, C_out); dense kernel (C, classes). Parameters and
gradients are dicts keyed by layer name: "conv1", "bn1", "stage{s}_block{b}_conv1|bn1|conv2|bn2", "fc";
a conv's entry is its kernel, a batch norm's (γ, β), the dense layer's (W, b).

- conv: PyTorch's Conv2d(k=3, stride s, padding=1, bias=False): out[i] = Σ_a xp[i·s + a], xp = x padded by one
  zero on every side.
- batch norm in training mode: batch mean and biased batch variance over (N, H, W), ε = 1e-5.
- option-A shortcut (biotorch's IdentityPadding): x[:, ::2, ::2, :] with (C_out − C_in) / 2 zero channels on
  each side.
- head: global average pooling, z = g W + b, softmax; loss = mean over the batch of −Σ y log p (PyTorch's
  cross-entropy on the logits), so ∂L/∂z = (p − y) / N.

`backward(..., mode)`: ``"bp"`` sends every error down through the layer's own kernel W; ``"fa"`` and ``"usf"``
through `feedback[name]` instead (biotorch: grad_input = conv2d_input(weight_backward, grad_output),
grad_output.mm(weight_backward); the kernel gradients as usual). Every conv and the dense layer gets a B; the
first conv's is never used (nothing below it needs an error). Batch norm, ReLU, the shortcuts, the addition
and the pooling pass errors exactly (they are not replaced). uSF's B is `usf_feedback(params)`:
sign(W)·√(2/(fan_in + fan_out)), fans k²C_in, k²C_out, re-read from the current W.
"""

import numpy as np

EPS = 1e-5
WIDTHS = (16, 32, 64)


# ------------------------------------------------------------------------------------ layers
def conv(x, kernel, s):
    """PyTorch's conv2d with padding 1 (channels last)."""
    k = kernel.shape[0]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for a in range(k):
        for b in range(k):
            out += np.einsum("nijc,co->nijo", xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s], kernel[a, b])
    return out


def conv_input_grad(delta, kernel, s, input_shape):
    """δ sent to the conv's input through `kernel` (W, or B): every tap scatters δ·kernel[a, b]ᵀ back."""
    k = kernel.shape[0]
    n, h, w, c = input_shape
    ho, wo = delta.shape[1:3]
    gp = np.zeros((n, h + 2, w + 2, c))
    for a in range(k):
        for b in range(k):
            gp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s] += np.einsum("nijo,co->nijc", delta, kernel[a, b])
    return gp[:, 1:h + 1, 1:w + 1]


def conv_kernel_grad(x, delta, s, k):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = delta.shape[1:3]
    grad = np.zeros((k, k, x.shape[3], delta.shape[3]))
    for a in range(k):
        for b in range(k):
            grad[a, b] = np.einsum("nijc,nijo->co", xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s], delta)
    return grad


def batchnorm(a, gamma, beta):
    """Training mode: (output, cache)."""
    mean = a.mean(axis=(0, 1, 2))
    var = ((a - mean) ** 2).mean(axis=(0, 1, 2))
    xhat = (a - mean) / np.sqrt(var + EPS)
    return gamma * xhat + beta, (xhat, var, gamma)


def batchnorm_backward(dy, cache):
    """(∂/∂a, ∂/∂γ, ∂/∂β), the batch statistics differentiated too."""
    xhat, var, gamma = cache
    m = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dxhat = dy * gamma
    da = (m * dxhat - dxhat.sum(axis=(0, 1, 2)) - xhat * (dxhat * xhat).sum(axis=(0, 1, 2))) / (m * np.sqrt(var + EPS))
    return da, (dy * xhat).sum(axis=(0, 1, 2)), dy.sum(axis=(0, 1, 2))


def shortcut_a(x, width):
    pad = (width - x.shape[3]) // 2
    y = np.zeros((x.shape[0], -(-x.shape[1] // 2), -(-x.shape[2] // 2), width))
    y[..., pad:pad + x.shape[3]] = x[:, ::2, ::2]
    return y


def shortcut_a_backward(dy, input_shape):
    pad = (dy.shape[3] - input_shape[3]) // 2
    dx = np.zeros(input_shape)
    dx[:, ::2, ::2] = dy[..., pad:pad + input_shape[3]]
    return dx


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------ network
def blocks(n):
    """(name prefix, stride, input channels, width) of the 3n basic blocks."""
    out, channels = [], WIDTHS[0]
    for stage, width in enumerate(WIDTHS, start=1):
        for block in range(1, n + 1):
            out.append((f"stage{stage}_block{block}", 2 if stage > 1 and block == 1 else 1, channels, width))
            channels = width
    return out


def weighted_names(n=3):
    """The conv and dense layers in the order of the forward pass."""
    return ["conv1"] + [f"{p}_conv{i}" for p, *_ in blocks(n) for i in (1, 2)] + ["fc"]


def usf_feedback(params):
    """uSF's B for every conv / dense kernel: sign(W)·√(2/(fan_in + fan_out)), Glorot's fans."""
    feedback = {}
    for name, value in params.items():
        kernel = value[0] if name == "fc" else value
        if name == "fc" or "conv" in name:
            receptive = int(np.prod(kernel.shape[:-2]))
            fan_in, fan_out = receptive * kernel.shape[-2], receptive * kernel.shape[-1]
            feedback[name] = np.sign(kernel) * np.sqrt(2.0 / (fan_in + fan_out))
    return feedback


def forward(params, x, n=3):
    """(probabilities, cache) of ResNet-(6n+2) on the batch x, batch norm in training mode; the cache holds
    every ReLU's output under the ReLU's name ("relu1", "{prefix}_relu1", "{prefix}_relu2")."""
    cache = {}

    def conv_bn(h, conv_name, bn_name, s):
        a = conv(h, params[conv_name], s)
        cache[conv_name] = (h, s)
        y, cache[bn_name] = batchnorm(a, *params[bn_name])
        return y

    h = np.maximum(conv_bn(np.asarray(x, np.float64), "conv1", "bn1", 1), 0)
    cache["relu1"] = h
    for p, s, channels, width in blocks(n):
        u = np.maximum(conv_bn(h, f"{p}_conv1", f"{p}_bn1", s), 0)
        cache[f"{p}_relu1"] = u
        v = conv_bn(u, f"{p}_conv2", f"{p}_bn2", 1)
        shortcut = shortcut_a(h, width) if s != 1 or channels != width else h
        cache[f"{p}_input_shape"] = h.shape
        h = np.maximum(v + shortcut, 0)
        cache[f"{p}_relu2"] = h
    cache["feature_map_shape"] = h.shape
    g = h.mean(axis=(1, 2))
    W, b = params["fc"]
    cache["fc"] = g
    return softmax(g @ W + b), cache


def backward(params, cache, probs, y, mode="bp", feedback=None, n=3):
    """The gradients (dict, as params) of the mean cross-entropy for one-hot targets y, the errors carried down
    through W (``"bp"``) or `feedback` (``"fa"``, ``"usf"``: every layer's B, by name)."""
    if mode not in ("bp", "fa", "usf"):
        raise ValueError(f"Unknown mode {mode!r}; valid: bp, fa, usf.")
    if mode == "usf" and feedback is None:
        feedback = usf_feedback(params)

    def down(name):  # the kernel that carries the error below layer `name`
        if mode == "bp":
            return params[name][0] if name == "fc" else params[name]
        return feedback[name]

    grads = {}

    def conv_bn_backward(dy, conv_name, bn_name, need_input=True):
        da, dgamma, dbeta = batchnorm_backward(dy, cache[bn_name])
        grads[bn_name] = (dgamma, dbeta)
        h, s = cache[conv_name]
        grads[conv_name] = conv_kernel_grad(h, da, s, params[conv_name].shape[0])
        return conv_input_grad(da, down(conv_name), s, h.shape) if need_input else None

    dz = (probs - y) / len(y)
    grads["fc"] = (cache["fc"].T @ dz, dz.sum(axis=0))
    _, hh, ww, c = cache["feature_map_shape"]
    dh = np.broadcast_to((dz @ down("fc").T)[:, None, None, :] / (hh * ww), cache["feature_map_shape"])
    for p, s, channels, width in reversed(blocks(n)):
        dsum = dh * (cache[f"{p}_relu2"] > 0)
        du = conv_bn_backward(dsum, f"{p}_conv2", f"{p}_bn2") * (cache[f"{p}_relu1"] > 0)
        dh = conv_bn_backward(du, f"{p}_conv1", f"{p}_bn1")
        input_shape = cache[f"{p}_input_shape"]
        dh = dh + (shortcut_a_backward(dsum, input_shape) if s != 1 or channels != width else dsum)
    conv_bn_backward(dh * (cache["relu1"] > 0), "conv1", "bn1", need_input=False)
    return grads


def cross_entropy(probs, y):
    return float(-np.mean(np.sum(y * np.log(probs), axis=1)))
