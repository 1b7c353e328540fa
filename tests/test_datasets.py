"""bpfree.datasets: embedded sets for real, tfds through mock_data, image folders from generated PNGs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bpfree import datasets
from bpfree.datasets import DatasetError

EMBEDDED = ("mnist1d", "mnist1d_seq", "digits", "yinyang", "xor")


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_sets_match_their_info(name):
    meta = datasets.info(name)
    for split, size in meta.splits.items():
        x, y = datasets.load(name, split)
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (size,) + meta.input_shape
        assert set(np.unique(y)) == set(range(meta.num_classes))
        assert -1.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_sets_are_deterministic_across_calls_and_cache_rebuilds(name, tmp_path, monkeypatch):
    first = datasets.load(name, "train")
    monkeypatch.setenv("BPFREE_CACHE_DIR", str(tmp_path))  # an empty cache: prepared again
    second = datasets.load(name, "train")
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    cached = os.listdir(tmp_path)
    if name != "xor":
        assert cached and all(f.endswith(".npz") for f in cached)


def test_mnist1d_is_the_package_make_dataset():
    import mnist1d.data

    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    x, y = datasets.load("mnist1d", "train", scaler="identity")
    np.testing.assert_allclose(x, data["x"].astype(np.float32))
    np.testing.assert_array_equal(y, data["y"])
    x, y = datasets.load("mnist1d", "test", scaler="identity")
    np.testing.assert_allclose(x, data["x_test"].astype(np.float32))
    assert (len(data["y"]), len(data["y_test"])) == (4000, 1000)


def test_class_balance():
    _, y = datasets.load("mnist1d")
    assert np.bincount(y).min() > 350  # 4000 over 10 classes
    _, y = datasets.load("yinyang")
    assert np.all(np.abs(np.bincount(y) / len(y) - 1 / 3) < 0.03)
    _, y_train = datasets.load("digits")
    _, y_test = datasets.load("digits", "test")
    np.testing.assert_allclose(np.bincount(y_train) / len(y_train), np.bincount(y_test) / len(y_test), atol=0.01)


def test_yinyang_follows_the_reference_procedure():
    x, y = datasets.load("yinyang", "train", scaler="identity")
    np.testing.assert_allclose(x[:, 0] + x[:, 2], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[:, 1] + x[:, 3], 1.0, atol=1e-6)
    assert np.all(np.hypot(x[:, 0] - 0.5, x[:, 1] - 0.5) <= 0.5)
    dots = np.minimum(np.hypot(x[:, 0] - 0.25, x[:, 1] - 0.5), np.hypot(x[:, 0] - 0.75, x[:, 1] - 0.5))
    np.testing.assert_array_equal(y == 2, dots < 0.1)
    # Different seeds per split: no sample shared.
    xv, _ = datasets.load("yinyang", "validation", scaler="identity")
    assert not set(map(tuple, xv[:50].round(6))) & set(map(tuple, x.round(6)))


@pytest.mark.parametrize("scaler,lo,hi", [("standard", -1, 1), ("zero_one", 0, 1), ("identity", 0, 16)])
def test_scalers(scaler, lo, hi):
    x, _ = datasets.load("digits", "train", scaler=scaler)
    assert x.min() == pytest.approx(lo) and x.max() == pytest.approx(hi)


def test_examples_frac_is_stratified_and_reproducible():
    _, y = datasets.load("mnist1d")
    xs, ys = datasets.load("mnist1d", examples_frac=0.25, seed=7)
    assert len(ys) == pytest.approx(1000, abs=10)
    np.testing.assert_allclose(np.bincount(ys) / len(ys), np.bincount(y) / len(y), atol=0.005)
    again = datasets.load("mnist1d", examples_frac=0.25, seed=7)
    np.testing.assert_array_equal(xs, again[0])
    other = datasets.load("mnist1d", examples_frac=0.25, seed=8)
    assert not np.array_equal(xs, other[0])
    assert len(datasets.load("mnist1d", "test", examples_frac=0.25)[1]) == 1000  # only train is subsampled


def test_validation_carved_from_train_is_disjoint_and_stratified():
    x_all, _ = datasets.load("digits", "train")
    x_train, y_train = datasets.load("digits", "train", validation_frac=0.2)
    x_val, y_val = datasets.load("digits", "validation", validation_frac=0.2)
    assert len(x_train) + len(x_val) == len(x_all)
    train_rows = {r.tobytes() for r in x_train}
    assert not any(r.tobytes() in train_rows for r in x_val)
    np.testing.assert_allclose(np.bincount(y_val) / len(y_val), np.bincount(y_train) / len(y_train), atol=0.02)
    # Independent of the training seed.
    np.testing.assert_array_equal(x_val, datasets.load("digits", "validation", validation_frac=0.2, seed=5)[0])
    with pytest.raises(DatasetError, match="no validation split; pass validation_frac"):
        datasets.load("digits", "validation")


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="imagenet9000"), "Unknown dataset 'imagenet9000'; valid: mnist, fmnist"),
    (dict(name="digits", split="dev"), "Unknown split 'dev'; valid: train, validation, test"),
    (dict(name="digits", scaler="minmax"), "Unknown scaler 'minmax'; valid: standard, zero_one, identity"),
    (dict(name="digits", examples_frac=1.5), "Invalid examples_frac 1.5"),
    (dict(name="xor:two"), "xor:N needs an integer"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        datasets.load(**kwargs)
    assert issubclass(DatasetError, ValueError)


def test_names_cover_the_families():
    names = datasets.names()
    for name in ("mnist", "fmnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "eurosat",
                 "mnist1d", "mnist1d_seq", "digits", "yinyang", "xor", "tfds:NAME", "folder:PATH"):
        assert name in names


# ------------------------------------------------------------------------------------------- tfds
@pytest.mark.parametrize("name,shape,classes", [
    ("mnist", (28, 28, 1), 10), ("fmnist", (28, 28, 1), 10), ("kmnist", (28, 28, 1), 10),
    ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100), ("eurosat", (64, 64, 3), 10),
    ("tfds:mnist", (28, 28, 1), 10),
])
def test_tfds_loaders_on_mock_data(name, shape, classes, tmp_path):
    import tensorflow_datasets as tfds

    meta = datasets.info(name, data_dir=str(tmp_path))
    assert meta.input_shape == shape and meta.num_classes == classes and meta.splits["train"] > 0
    with tfds.testing.mock_data(num_examples=40):
        for split in ("train", "test"):
            x, y = datasets.load(name, split, data_dir=str(tmp_path), download=False)
            assert x.shape == (40,) + shape and x.dtype == np.float32 and y.dtype == np.int64
            assert -1.0 <= x.min() and x.max() <= 1.0 and y.max() < classes
        x01, _ = datasets.load(name, "train", scaler="zero_one", data_dir=str(tmp_path), download=False)
        assert 0.0 <= x01.min() and x01.max() <= 1.0
        ds = datasets.pipeline(name, "train", batch_size=16, training=True, data_dir=str(tmp_path), download=False)
        xb, yb = next(iter(ds))
        assert xb.shape == (16, meta.features) and yb.shape == (16, classes)


def test_tfds_pipeline_subsample_on_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=200):
        _, y = datasets.load("mnist", "train", data_dir=str(tmp_path), download=False)
        _, ys = datasets.load("mnist", "train", examples_frac=0.5, seed=1, data_dir=str(tmp_path), download=False)
    assert abs(len(ys) - 100) <= 10
    assert set(np.unique(ys)) == set(np.unique(y))


def test_tfds_offline_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as error:
        datasets.load("kmnist", "train", download=False)
    message = str(error.value)
    assert "tfds dataset 'kmnist' could not be loaded" in message
    assert f"not prepared in {tmp_path}" in message
    assert f"TFDS_DATA_DIR={tmp_path}" in message
    assert "download_and_prepare()" in message
    assert "\n" not in message


@pytest.mark.parametrize("name,fragments", [
    ("tfds:no_such_set_xyz", ["'no_such_set_xyz'", "tfds.list_builders()"]),  # tfds lists all its names
    ("tfds:wmt14_translate", ["'wmt14_translate'", "not an image classification set"]),  # features over lines
])
def test_a_tfds_name_that_cannot_be_used_is_refused_in_one_line(name, fragments):
    with pytest.raises(DatasetError) as error:
        datasets.info(name)
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message


# ------------------------------------------------------------------------------------------- folders
def write_png(path, shape, value):
    tf.io.write_file(str(path), tf.io.encode_png(np.full(shape, value, dtype=np.uint8)))


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    for c, cls in enumerate(("cat", "dog", "emu")):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            shape = (20 + i, 30, 3) if i % 2 else (16, 12, 1)  # mixed sizes, RGB and grayscale
            write_png(root / cls / f"{i:02d}.png", shape, 40 * c + i)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_folder_dataset(image_folder):
    name = f"folder:{image_folder}"
    meta = datasets.info(name, image_size=24)
    assert meta.num_classes == 3 and meta.input_shape == (24, 24, 3)
    assert meta.splits == {"train": 15, "test": 3}
    x, y = datasets.load(name, "train", image_size=24, scaler="identity")
    assert x.shape == (15, 24, 24, 3) and np.bincount(y).tolist() == [5, 5, 5]
    xt, yt = datasets.load(name, "test", image_size=24, scaler="identity")
    assert xt.shape == (3, 24, 24, 3) and yt.tolist() == [0, 1, 2]
    # Every 5th image of each class (sorted) is a test image: emu's 04.png has value 80 + 4.
    assert xt[2].max() == 84
    again = datasets.load(name, "train", image_size=24, scaler="identity")
    np.testing.assert_array_equal(x, again[0])


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        datasets.info(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "one" / "only").mkdir(parents=True)
    write_png(tmp_path / "one" / "only" / "x.png", (4, 4, 1), 1)
    with pytest.raises(DatasetError, match="only one class"):
        datasets.load(f"folder:{tmp_path / 'one'}")
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.load(f"folder:{tmp_path / 'nowhere'}")


# ------------------------------------------------------------------------------------------- pipeline
def test_pipeline_classification_and_reconstruction():
    ds = datasets.pipeline("digits", "train", batch_size=64, problem_type="classification", training=False)
    batches = list(ds)
    assert sum(int(b[0].shape[0]) for b in batches) == 1437
    xb, yb = batches[0]
    assert xb.shape == (64, 64) and yb.shape == (64, 10) and yb.dtype == tf.float32
    np.testing.assert_allclose(tf.reduce_sum(yb, axis=1), 1.0)
    xr, tr = next(iter(datasets.pipeline("mnist1d", "test", batch_size=32, problem_type="reconstruction")))
    np.testing.assert_array_equal(xr, tr)


def test_pipeline_shuffles_reproducibly_and_every_epoch():
    def first_labels(seed):
        ds = datasets.pipeline("mnist1d", "train", batch_size=100, training=True, seed=seed)
        return [np.argmax(next(iter(ds))[1], axis=1) for _ in range(1)], ds

    (a,), ds = first_labels(3)
    (b,), _ = first_labels(3)
    np.testing.assert_array_equal(a, b)
    epoch1 = np.argmax(next(iter(ds))[1], axis=1)
    epoch2 = np.argmax(next(iter(ds))[1], axis=1)
    assert not np.array_equal(epoch1, epoch2)


def test_pipeline_augmentation():
    plain = next(iter(datasets.pipeline("digits", "train", batch_size=32, training=True, seed=1)))[0]
    augmented = next(iter(datasets.pipeline("digits", "train", batch_size=32, training=True, seed=1,
                                            augment=dict(rotation=0.2, translation=0.2))))[0]
    assert augmented.shape == plain.shape and not np.allclose(augmented, plain)
    evaluation = next(iter(datasets.pipeline("digits", "test", batch_size=32, augment=dict(rotation=0.2))))[0]
    np.testing.assert_array_equal(evaluation, next(iter(datasets.pipeline("digits", "test", batch_size=32)))[0])
    with pytest.raises(DatasetError, match="Augmentation needs images"):
        datasets.pipeline("mnist1d", "train", batch_size=8, training=True, augment=dict(zoom=0.1))


def test_pipeline_feeds_a_network():
    import keras

    from bpfree import build_model

    meta = datasets.info("digits")
    model = build_model("dfa", "32", meta.features, meta.num_classes, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["error_rate"])
    history = model.fit(datasets.pipeline("digits", "train", batch_size=64, training=True, seed=0), epochs=5,
                        validation_data=datasets.pipeline("digits", "test", batch_size=256), verbose=0).history
    assert history["loss"][-1] < history["loss"][0] and history["val_error_rate"][-1] < 50
