"""Teacher input signals for the GLE teacher–student experiments (seed `data/datasets.generate_input`).

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


def n_steps_for(dt, T):
    """The number of samples of a signal of duration `T` at step `dt` (ValueError if not positive)."""
    dt, T = float(dt), float(T)
    if not dt > 0:
        raise ValueError(f"Invalid dt {dt}: must be > 0.")
    if not T > 0:
        raise ValueError(f"Invalid duration T {T}: must be > 0.")
    n = int(round(T / dt))
    if n < 1:
        raise ValueError(f"Duration T {T} is shorter than one step dt {dt}.")
    return n


def time_grid(dt, T):
    """t_i = i·dt for i < n_steps_for(dt, T), float64."""
    return np.arange(n_steps_for(dt, T)) * float(dt)


def step_function(dt, T, batch_size=1, *, width=2.0, smooth_sigma=5.0, channels=1, seed=0):
    """A ±1 square wave of half-period `width`, shifted per sample, Gaussian-smoothed (σ in samples).

    Returns (batch_size, n_steps, channels); channel 1 (if asked for) is the wave at half frequency.
    """
    n = n_steps_for(dt, T)
    _check_batch(batch_size)
    if channels not in (1, 2):
        raise ValueError(f"Invalid channels {channels}: valid: 1, 2.")
    w = int(round(width / dt))
    if w < 1:
        raise ValueError(f"Invalid width {width}: must be at least one step dt {dt}.")
    if smooth_sigma < 0:
        raise ValueError(f"Invalid smooth_sigma {smooth_sigma}: must be ≥ 0.")
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
    if channels < 1:
        raise ValueError(f"Invalid channels {channels}: must be ≥ 1.")
    if not tau >= dt:
        raise ValueError(f"Invalid tau {tau}: must be ≥ dt {dt} for a stable discretisation.")
    if sigma < 0:
        raise ValueError(f"Invalid sigma {sigma}: must be ≥ 0.")
    a = 1.0 - dt / tau
    xi = np.random.default_rng(seed).standard_normal((batch_size, n - 1, channels))
    drive = dt * mu / tau + sigma * math.sqrt(2.0 * dt / tau) * xi
    # x_{i+1} = a x_i + drive_i: a first-order IIR filter along time, started from x_0.
    zi = np.full((batch_size, 1, channels), a * x0)
    rest, _ = signal.lfilter([1.0], [1.0, -a], drive, axis=1, zi=zi)
    x = np.concatenate([np.full((batch_size, 1, channels), float(x0)), rest], axis=1)
    return x.astype(np.float32)


def _check_batch(batch_size):
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"Invalid batch_size {batch_size}: must be a positive integer.")
