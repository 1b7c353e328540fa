"""`load`: one split of a dataset as scaled float32 numpy arrays (resized on request)."""

from bpfree import checks
from bpfree.datasets import catalog, preprocess
from bpfree.datasets.errors import DatasetError

SPLITS = ("train", "validation", "test")
VALIDATION_SEED = 20240229  # the carve-out is fixed, whatever the training seed


def load(name, split="train", *, examples_frac=0.0, scaler="standard", seed=None, validation_frac=0.0,
         image_size=catalog.DEFAULT_IMAGE_SIZE, data_dir=None, download=True, input_size=0, resize="bilinear"):
    """(x float32 (N, features...), y int64 (N,)) of `split` of dataset `name`.

    - ``split``: "train", "test", or "validation" (a set's own validation split, e.g. yinyang's; or,
      with ``validation_frac`` > 0, a stratified fraction carved deterministically from train, which
      "train" then excludes).
    - ``examples_frac`` in (0, 1): a stratified subsample of the training split, class proportions
      kept, reproducible from ``seed``; 0 keeps everything.
    - ``scaler``: "standard" ([−1, 1]), "zero_one" ([0, 1]), "identity" (raw values as float32) or
      "mean_std" (per channel, μ and σ of the whole native training split: `preprocess.channel_stats`).
    - ``input_size`` S > 0: images become S × S, by ``resize`` "bilinear" or "pad" (symmetric, raw 0;
      S smaller than the image is refused); 0 keeps the native size.
    """
    checks.choice("split", split, SPLITS, error=DatasetError)
    preprocess.check_scaler(scaler)
    if input_size or resize != "bilinear":  # checked against the set's shape (reads metadata only)
        catalog.info(name, image_size=image_size, data_dir=data_dir, input_size=input_size, resize=resize)
    for label, value in (("examples_frac", examples_frac), ("validation_frac", validation_frac)):
        if not 0.0 <= float(value) < 1.0:
            raise checks.invalid(label, value, "a fraction in [0, 1)", error=DatasetError)
    meta = catalog.info(name, image_size=image_size, data_dir=data_dir) if catalog.resolve(name)[0] != "tfds" else None
    own_validation = meta is not None and "validation" in meta.splits
    if split == "validation" and not own_validation and not validation_frac:
        raise DatasetError(f"Dataset {name!r} has no validation split; pass validation_frac > 0 to carve one from train.")

    source = "train" if split == "validation" and not own_validation else split
    if source == "validation" and validation_frac:
        source = "train"  # an explicit carve-out wins over the set's own split
    arrays, value_range = catalog.raw_splits(name, image_size=image_size, data_dir=data_dir, download=download,
                                             split=source)
    x, y = arrays[f"x_{source}"], arrays[f"y_{source}"]
    if value_range is None:  # data-dependent range: the training split's (mnist1d)
        value_range = (float(arrays["x_train"].min()), float(arrays["x_train"].max()))
    stats = None
    if scaler == "mean_std":
        stats = _train_stats(name, arrays, value_range, image_size, data_dir, download)
    if source == "train" and validation_frac:
        rest, carved = preprocess.split_off(y, validation_frac, VALIDATION_SEED)
        keep = carved if split == "validation" else rest
        x, y = x[keep], y[keep]
    if examples_frac and split == "train":
        keep = preprocess.stratified_indices(y, examples_frac, 0 if seed is None else seed)
        x, y = x[keep], y[keep]
    x = preprocess.resize_images(x, int(input_size or 0), resize)
    return preprocess.scale(x, scaler, value_range, stats), y.astype("int64")


_TFDS_STATS = {}  # (tfds set, data dir) -> (μ, σ) of its training split, kept for the process


def _train_stats(name, arrays, value_range, image_size, data_dir, download):
    """`mean_std`'s (μ, σ): of the whole native training split. Every family but tfds returns all splits
    at once (`arrays`); a tfds set's training split is read for them once per process."""
    if "x_train" in arrays:
        return preprocess.channel_stats(arrays["x_train"], value_range)
    key = (catalog.backend(name, data_dir), data_dir)
    if key not in _TFDS_STATS:
        train, _ = catalog.raw_splits(name, image_size=image_size, data_dir=data_dir, download=download,
                                      split="train")
        _TFDS_STATS[key] = preprocess.channel_stats(train["x_train"], value_range)
    return _TFDS_STATS[key]


def mean_std_stats(name, *, image_size=catalog.DEFAULT_IMAGE_SIZE, data_dir=None, download=True):
    """The (μ, σ) per channel that the ``mean_std`` scaler uses for `name` (of [0, 1]-mapped values)."""
    arrays, value_range = catalog.raw_splits(name, image_size=image_size, data_dir=data_dir, download=download,
                                             split="train")
    if value_range is None:
        value_range = (float(arrays["x_train"].min()), float(arrays["x_train"].max()))
    return _train_stats(name, arrays, value_range, image_size, data_dir, download)
