"""GLE teacher–student experiments: input generators, LagLine, LagNet, truncated BPTT, the CLIs."""

import math

import numpy as np
import pytest

from bpfree.experiments import inputs

# ----------------------------------------------------------------------------------------------
# Input generators


def test_step_function_shape_values_and_period():
    x = inputs.step_function(0.01, 20.0, batch_size=7, smooth_sigma=0, channels=2, seed=3)
    assert x.shape == (7, 2000, 2) and x.dtype == np.float32
    assert set(np.unique(x)) == {-1.0, 1.0}
    w = 200  # width 2 / dt
    for b in range(7):
        wave = x[b, :, 0]
        # ±1 half-period w: period 2w, and it flips every w samples.
        np.testing.assert_array_equal(wave[: -2 * w], wave[2 * w:])
        np.testing.assert_array_equal(wave[:-w], -wave[w:])
        # channel 1: the same wave at half the frequency.
        np.testing.assert_array_equal(x[b, : -4 * w, 1], x[b, 4 * w:, 1])
        np.testing.assert_array_equal(x[b, :-2 * w, 1], -x[b, 2 * w:, 1])
    # per-sample shifts: the phases differ between samples.
    assert len({tuple(x[b, :w, 0]) for b in range(7)}) > 1


def test_step_function_deterministic_under_seed():
    a = inputs.step_function(0.01, 10.0, batch_size=5, seed=11)
    b = inputs.step_function(0.01, 10.0, batch_size=5, seed=11)
    c = inputs.step_function(0.01, 10.0, batch_size=5, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_step_function_smoothing_is_gaussian_convolution():
    sigma = 5.0
    raw = inputs.step_function(0.01, 10.0, batch_size=3, smooth_sigma=0, seed=4)
    smooth = inputs.step_function(0.01, 10.0, batch_size=3, smooth_sigma=sigma, seed=4)
    # independent reference: a normalised Gaussian kernel truncated at 4σ, away from the edges.
    k = np.arange(-20, 21)
    kernel = np.exp(-0.5 * (k / sigma) ** 2)
    kernel /= kernel.sum()
    for b in range(3):
        ref = np.convolve(raw[b, :, 0].astype(np.float64), kernel, mode="valid")
        np.testing.assert_allclose(smooth[b, 20:-20, 0], ref, atol=1e-6)
    # no jumps left: the steepest slope of a smoothed unit step of height 2 is 2/(σ√(2π)) per sample.
    assert np.abs(np.diff(smooth[..., 0], axis=1)).max() <= 2 / (sigma * math.sqrt(2 * math.pi)) + 1e-4
    assert np.abs(smooth).max() <= 1.0 + 1e-6


def test_sinusoids_formula():
    x = inputs.sinusoids(0.01, 5.0, batch_size=2, sine_freqs=(0.3, 1.0), cosine_freqs=(2.0,))
    t = np.arange(500) * 0.01
    ref = np.sin(2 * np.pi * 0.3 * t) + np.sin(2 * np.pi * t) + np.cos(2 * np.pi * 2 * t)
    assert x.shape == (2, 500, 1)
    np.testing.assert_allclose(x[0, :, 0], ref, atol=1e-6)
    np.testing.assert_array_equal(x[0], x[1])


def test_ornstein_uhlenbeck_statistics():
    dt, tau, sigma, mu = 0.01, 1.0, 0.5, 0.3
    x = inputs.ornstein_uhlenbeck(dt, 2000.0, batch_size=4, sigma=sigma, mu=mu, tau=tau, x0=mu, seed=0)
    assert x.shape == (4, 200000, 1) and x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx(mu)
    samples = x[:, 1000:, 0].astype(np.float64)
    # ~ 4·2000/τ independent stretches: the mean's standard error is about σ/√4000 ≈ 0.008.
    assert samples.mean() == pytest.approx(mu, abs=0.04)
    assert samples.var() == pytest.approx(sigma**2 / (1 - dt / (2 * tau)), rel=0.1)
    # autocorrelation at lag τ: e^{-1}.
    lag = int(tau / dt)
    c = samples - samples.mean()
    rho = (c[:, lag:] * c[:, :-lag]).mean() / c.var()
    assert rho == pytest.approx(math.exp(-1), abs=0.05)


def test_ornstein_uhlenbeck_matches_the_euler_recursion_and_seed():
    dt, tau, sigma = 0.05, 0.5, 0.7
    x = inputs.ornstein_uhlenbeck(dt, 1.0, batch_size=2, channels=3, sigma=sigma, tau=tau, x0=1.5, seed=9)
    xi = np.random.default_rng(9).standard_normal((2, 19, 3))
    ref = np.empty((2, 20, 3))
    ref[:, 0] = 1.5
    for i in range(19):
        ref[:, i + 1] = ref[:, i] + dt * (-ref[:, i] / tau) + sigma * math.sqrt(2 * dt / tau) * xi[:, i]
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, inputs.ornstein_uhlenbeck(dt, 1.0, batch_size=2, channels=3, sigma=sigma,
                                                               tau=tau, x0=1.5, seed=9))
    assert not np.array_equal(x, inputs.ornstein_uhlenbeck(dt, 1.0, batch_size=2, channels=3, sigma=sigma,
                                                           tau=tau, x0=1.5, seed=10))


@pytest.mark.parametrize("call, match", [
    (lambda: inputs.step_function(0.0, 1.0), "dt"),
    (lambda: inputs.step_function(0.01, -1.0), "T"),
    (lambda: inputs.step_function(0.01, 1.0, channels=3), "channels 3"),
    (lambda: inputs.step_function(0.01, 1.0, batch_size=0), "batch_size 0"),
    (lambda: inputs.sinusoids(0.01, 1.0), "frequency"),
    (lambda: inputs.ornstein_uhlenbeck(0.1, 1.0, tau=0.01), "tau 0.01"),
])
def test_generators_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
