"""Time signals on a dt grid: the teacher inputs of the GLE teacher–student runs (seed `data/datasets.generate_input`).

Every generator returns a float32 numpy array of shape (batch, n_steps, channels) sampled on the grid
t_i = i·dt, i = 0 … n_steps−1 with n_steps = round(T/dt) (the seed's `linspace(0, T, n_steps)` is off
the dt grid by a factor n/(n−1); we use the exact grid). Stochastic generators take a `seed` and are
deterministic under it; wrap the result in `tf.constant` (or slice it into chunks) to feed a model.

- `step_function`: a ±1 square wave of half-period `width` (time units), rolled by a per-sample
  random shift s ~ U{0, …, width/dt − 1} samples, then Gaussian-smoothed along time with σ samples
  (LagLine: width 2, σ = 5):

      x_b(t_i) = (G_σ * q_b)(i),   q_b(i) = +1 if ⌊(i − s_b) / w⌋ even else −1,   w = width/dt,

  with G_σ the normalised Gaussian kernel (scipy `gaussian_filter1d`, reflecting edges). A second
  channel (the seed's unused one) is the same wave at half the frequency.
- `sinusoids`: x(t) = Σ_k sin(2π f_k t) + Σ_k cos(2π g_k t), the same for every sample (LagNet).
- `ornstein_uhlenbeck`: the Euler–Maruyama discretisation of dx = (μ − x)/τ dt + σ√(2/τ) dW,

      x_{i+1} = x_i + dt (μ − x_i)/τ + σ √(2 dt/τ) ξ_i,   ξ_i ~ N(0, 1),   x_0 = x0,

  whose stationary law is N(μ, σ² / (1 − dt/(2τ))) ≈ N(μ, σ²), autocorrelation e^{−|Δt|/τ}.
"""

import math

import numpy as np
from scipy import ndimage, signal

from bpfree import checks

_POSITIVE = "a number > 0"
_NON_NEGATIVE = "a number ≥ 0"


def n_steps_for(dt, T):
    """The number of samples of a signal of duration `T` at step `dt` (ValueError if not positive)."""
    dt = checks.number("dt", float(dt), lambda v: v > 0, _POSITIVE)
    T = checks.number("duration T", float(T), lambda v: round(v / dt) >= 1, f"at least one step dt {dt}")
    return int(round(T / dt))


def step_function(dt, T, batch_size=1, *, width=2.0, smooth_sigma=5.0, channels=1, seed=0):
    """A ±1 square wave of half-period `width`, shifted per sample, Gaussian-smoothed (σ in samples).

    Returns (batch_size, n_steps, channels); channel 1 (if asked for) is the wave at half frequency.
    """
    n = n_steps_for(dt, T)
    _check_batch(batch_size)
    checks.choice("channels", channels, (1, 2), label="Invalid")
    checks.number("width", float(width), lambda v: round(v / dt) >= 1, f"at least one step dt {dt}")
    checks.number("smooth_sigma", float(smooth_sigma), lambda v: v >= 0, _NON_NEGATIVE)
    w = int(round(width / dt))
    shifts = np.random.default_rng(seed).integers(0, w, size=batch_size)
    i = np.arange(n)[None, :] - shifts[:, None]
    one = np.float32(1.0)
    waves = [np.where((i // w) % 2 == 0, one, -one)]
    if channels == 2:
        waves.append(np.where((i // (2 * w)) % 2 == 0, one, -one))
    x = np.stack(waves, axis=-1)  # float32 throughout: LagLine's 405k steps × 100 samples is 160 MB
    if smooth_sigma > 0:
        x = ndimage.gaussian_filter1d(x, sigma=smooth_sigma, axis=1, mode="reflect")
    return x


def sinusoids(dt, T, batch_size=1, *, sine_freqs=(), cosine_freqs=()):
    """x(t) = Σ sin(2π f t) + Σ cos(2π g t) (frequencies in cycles per time unit), one channel."""
    n = n_steps_for(dt, T)
    _check_batch(batch_size)
    if not len(sine_freqs) + len(cosine_freqs):
        raise ValueError("sinusoids needs at least one frequency in sine_freqs or cosine_freqs.")
    t = np.arange(n) * float(dt)
    x = np.zeros(n)
    for f in sine_freqs:
        x += np.sin(2 * math.pi * float(f) * t)
    for g in cosine_freqs:
        x += np.cos(2 * math.pi * float(g) * t)
    return np.broadcast_to(x[None, :, None], (batch_size, n, 1)).astype(np.float32)


def ornstein_uhlenbeck(dt, T, batch_size=1, *, channels=1, sigma=0.5, mu=0.0, tau=1.0, x0=0.0, seed=0):
    """Ornstein–Uhlenbeck noise (Euler–Maruyama, see the module docstring), seed defaults σ 0.5, τ 1."""
    n = n_steps_for(dt, T)
    _check_batch(batch_size)
    checks.whole("channels", channels, lambda v: v >= 1, "a positive integer")
    checks.number("tau", float(tau), lambda v: v >= dt, f"≥ dt {dt} for a stable discretisation")
    checks.number("sigma", float(sigma), lambda v: v >= 0, _NON_NEGATIVE)
    a = 1.0 - dt / tau
    xi = np.random.default_rng(seed).standard_normal((batch_size, n - 1, channels))
    drive = dt * mu / tau + sigma * math.sqrt(2.0 * dt / tau) * xi
    # x_{i+1} = a x_i + drive_i: a first-order IIR filter along time, started from x_0.
    zi = np.full((batch_size, 1, channels), a * x0)
    rest, _ = signal.lfilter([1.0], [1.0, -a], drive, axis=1, zi=zi)
    x = np.concatenate([np.full((batch_size, 1, channels), float(x0)), rest], axis=1)
    return x.astype(np.float32)


def _check_batch(batch_size):
    checks.whole("batch_size", batch_size, lambda v: v >= 1, "a positive integer")
