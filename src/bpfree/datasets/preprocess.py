"""Scalers, resizing, stratified subsampling and the validation carve-out, on numpy arrays.

``mean_std`` standardises per channel, (x/range − μ)/σ, with μ and σ of the set's whole training split
(`channel_stats`: before any validation carve-out or subsample, so they are fixed whatever the seed);
on MNIST that is torchvision's usual Normalize((0.1307,), (0.3081,)).
"""

import numpy as np

from bpfree import checks
from bpfree.datasets.errors import DatasetError

SCALERS = ("standard", "zero_one", "identity", "mean_std")
RESIZES = ("bilinear", "pad")  # how `input_size` is reached: bilinear resize, or symmetric zero padding


def check_scaler(scaler):
    return checks.choice("scaler", scaler, SCALERS, error=DatasetError)


def scale(x, scaler, value_range, stats=None):
    """Maps x linearly from `value_range` (lo, hi) to [−1, 1] (standard) or [0, 1] (zero_one), or to
    ((x − lo)/(hi − lo) − μ)/σ per channel (mean_std, with ``stats`` = (μ, σ) from `channel_stats`).

    `value_range` is fixed per dataset (pixel range for images, the training split's min/max for
    embedded sets), so every split is scaled alike; ``identity`` returns x as float32.
    """
    check_scaler(scaler)
    if scaler == "identity":
        return np.asarray(x, dtype=np.float32)
    lo, hi = (float(v) for v in value_range)
    # One float32 array, updated in place (the caller's x is never changed): the same float32 operations
    # as (x − lo) / (hi − lo) · 2 − 1, without a split-sized temporary for each.
    unit = np.subtract(x, np.float32(lo), dtype=np.float32)
    unit /= np.float32(hi - lo if hi > lo else 1.0)
    if scaler == "standard":
        unit *= np.float32(2.0)
        unit -= np.float32(1.0)
    elif scaler == "mean_std":
        mean, std = (np.asarray(v, dtype=np.float32) for v in stats)
        unit -= mean
        unit /= std
    return unit


def scaled_range(scaler, value_range, stats=None):
    """The value range of the data after `scale` (for brightness augmentation)."""
    if scaler == "mean_std":
        mean, std = (np.asarray(v, dtype=np.float64) for v in stats)
        return float(np.min((0.0 - mean) / std)), float(np.max((1.0 - mean) / std))
    return {"standard": (-1.0, 1.0), "zero_one": (0.0, 1.0), "identity": tuple(value_range)}[scaler]


def channel_stats(x, value_range, chunk=8192):
    """(μ, σ) of x mapped to [0, 1] by `value_range`, per channel (last axis) for images, one of each
    for vectors; float64 sums over chunks (no float copy of the whole split)."""
    x = np.asarray(x)
    channels = x.shape[-1] if x.ndim == 4 else 1
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].astype(np.float64).reshape(-1, channels)
        total += part.sum(axis=0)
        squares += np.square(part).sum(axis=0)
        count += len(part)
    lo, hi = (float(v) for v in value_range)
    width = hi - lo if hi > lo else 1.0
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0))
    return (mean - lo) / width, np.maximum(std / width, 1e-12)


def check_resize(shape, input_size, resize, name, error=ValueError):
    """The input shape once resized to `input_size` (0/None: `shape`); one-line errors for a bad request."""
    checks.choice("resize", resize, RESIZES, error=error)
    if not input_size:
        return tuple(shape)
    if not (checks.is_number(input_size) and int(input_size) == input_size and input_size > 0):
        raise checks.invalid("input_size", input_size, "an integer > 0, or 0 for the native size", error=error)
    if len(shape) != 3:
        raise checks.invalid("input_size", input_size, f"0 for dataset {name!r}, whose examples are not images "
                             f"(shape {tuple(shape)})", error=error)
    if resize == "pad" and int(input_size) < max(shape[:2]):
        raise checks.invalid("input_size", input_size, f"at least the image size {shape[0]}×{shape[1]} of "
                             f"{name!r} with resize 'pad' (or resize 'bilinear' to shrink)", error=error)
    return (int(input_size), int(input_size), shape[2])


def resize_images(x, input_size, resize):
    """Raw images (N, H, W, C) at `input_size` × `input_size`: bilinear (half-pixel centres, as
    torchvision's Resize; float32 raw values) or zero-padded symmetrically (raw 0, before scaling)."""
    if not input_size or tuple(x.shape[1:3]) == (input_size, input_size):
        return x
    if resize == "pad":
        (top, bottom), (left, right) = (((input_size - n) // 2, input_size - n - (input_size - n) // 2)
                                        for n in x.shape[1:3])
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    import tensorflow as tf

    out = np.empty((len(x), input_size, input_size, x.shape[3]), np.float32)
    for start in range(0, len(x), 8192):  # bounded temporaries
        out[start:start + 8192] = tf.image.resize(tf.cast(x[start:start + 8192], tf.float32),
                                                  (input_size, input_size), method="bilinear").numpy()
    return out


def stratified_indices(y, fraction, seed):
    """Sorted indices of a stratified subsample holding `fraction` of every class (at least one each)."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        n = max(1, int(round(fraction * len(members))))
        keep.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def split_off(y, fraction, seed):
    """(rest, carved) index arrays: a stratified `fraction` carved from y, deterministic in seed."""
    carved = stratified_indices(y, fraction, seed)
    mask = np.ones(len(y), dtype=bool)
    mask[carved] = False
    return np.flatnonzero(mask), carved
