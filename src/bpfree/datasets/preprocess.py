"""Scalers, stratified subsampling and the validation carve-out, on numpy arrays."""

import numpy as np

from bpfree import checks
from bpfree.datasets.errors import DatasetError

SCALERS = ("standard", "zero_one", "identity")


def check_scaler(scaler):
    return checks.choice("scaler", scaler, SCALERS, error=DatasetError)


def scale(x, scaler, value_range):
    """Maps x linearly from `value_range` (lo, hi) to [−1, 1] (standard) or [0, 1] (zero_one).

    `value_range` is fixed per dataset (pixel range for images, the training split's min/max for
    embedded sets), so every split is scaled alike; ``identity`` returns x as float32.
    """
    check_scaler(scaler)
    x = np.asarray(x, dtype=np.float32)
    if scaler == "identity":
        return x
    lo, hi = (float(v) for v in value_range)
    unit = (x - lo) / (hi - lo if hi > lo else 1.0)
    return (unit * 2.0 - 1.0 if scaler == "standard" else unit).astype(np.float32)


def scaled_range(scaler, value_range):
    """The value range of the data after `scale` (for brightness augmentation)."""
    return {"standard": (-1.0, 1.0), "zero_one": (0.0, 1.0), "identity": tuple(value_range)}[scaler]


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
