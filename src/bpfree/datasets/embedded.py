"""Embedded, offline datasets: generated or shipped with a package, cached as .npz.

Each returns the raw arrays of every split ({"x_train", "y_train", "x_test", "y_test", ...}) and the
value range the scalers map from:

- ``mnist1d``: the `mnist1d` package's `make_dataset()` with its default arguments (5000 samples,
  train_split 0.8 → 4000 train / 1000 test, 40 features, seed 42). Values are the package's
  standardised ones (mean 0, std 1): ``identity`` keeps them; standard / zero_one map the training
  split's [min, max] linearly to [−1, 1] / [0, 1].
- ``mnist1d_seq``: the same procedure with final_seq_length 360 (the GLE seed's input: one scalar per
  time step), x of shape (N, 360).
- ``digits``: scikit-learn's 8×8 handwritten digits (1797 images, values 0–16, shape (8, 8, 1)), a
  stratified deterministic 80/20 split. Scalers map [0, 16].
- ``yinyang``: Kriener et al. 2022 (r_small 0.1, r_big 0.5, rejection sampling towards a random goal
  class, inputs (x, y, 1−x, 1−y)); train 5000 seed 42, validation 1000 seed 41, test 1000 seed 40.
  Scalers map [0, 1] (identity keeps the published inputs).
- ``xor``: the 4 points of XOR in both splits; ``xor:N`` a noisy version, N training and N // 4 test
  points (N(0, 0.1²) noise around the corners, seeds 0 and 1). Scalers map [0, 1].
"""

import numpy as np

from bpfree.datasets import cache


def mnist1d(final_seq_length=40):
    def build():
        import mnist1d.data

        args = mnist1d.data.get_dataset_args()
        args.final_seq_length = final_seq_length
        data = mnist1d.data.make_dataset(args)
        return {
            "x_train": data["x"].astype(np.float32), "y_train": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64),
        }

    arrays = cache.cached("mnist1d", {"final_seq_length": final_seq_length, "v": 1}, build)
    return arrays, (float(arrays["x_train"].min()), float(arrays["x_train"].max()))


def digits():
    def build():
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        data = load_digits()
        x = data.images.astype(np.float32)[..., None]
        y = data.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

    return cache.cached("digits", {"v": 1}, build), (0.0, 16.0)


def yinyang():
    def build():
        arrays = {}
        for split, size, seed in (("train", 5000, 42), ("validation", 1000, 41), ("test", 1000, 40)):
            arrays[f"x_{split}"], arrays[f"y_{split}"] = yinyang_samples(size, seed)
        return arrays

    return cache.cached("yinyang", {"v": 1}, build), (0.0, 1.0)


def yinyang_samples(size, seed, r_small=0.1, r_big=0.5):
    """The Yin-Yang dataset of Kriener, Göltz, Petrovici (2022), as its reference generator draws it."""
    rng = np.random.RandomState(seed)
    xs, ys = [], []
    for _ in range(size):
        goal = rng.randint(3)  # balance the classes by rejection sampling towards a random goal
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            c = _yinyang_class(x, y, r_small, r_big)
            if c == goal:
                break
        xs.append([x, y, 1.0 - x, 1.0 - y])
        ys.append(c)
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)


def _yinyang_class(x, y, r_small, r_big):
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2  # the dots
    yin = d_right <= r_small or (r_small < d_left <= 0.5 * r_big) or (y > r_big and d_right > 0.5 * r_big)
    return int(yin)


XOR_POINTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int64)


def xor(num_points=None, noise=0.1):
    if num_points is None:
        arrays = {"x_train": XOR_POINTS, "y_train": XOR_LABELS, "x_test": XOR_POINTS, "y_test": XOR_LABELS}
        return arrays, (0.0, 1.0)
    arrays = {}
    for split, n, seed in (("train", num_points, 0), ("test", max(4, num_points // 4), 1)):
        rng = np.random.default_rng(seed)
        corner = np.arange(n) % 4
        arrays[f"x_{split}"] = (XOR_POINTS[corner] + rng.normal(scale=noise, size=(n, 2))).astype(np.float32)
        arrays[f"y_{split}"] = XOR_LABELS[corner]
    return arrays, (0.0, 1.0)
