"""IDX directories (MNIST format): the reader and each of its refusals on files written here, ``idx:PATH``
through load / info / pipeline, the $BPFREE_DATA_DIR fallback for tfds names (and tfds still preferred
where it has the set prepared), the mean_std scaler, input_size / resize, the CLI's refusal of a bad
directory, data_source in the records, and the real files of ../shared/data where they exist."""

import gzip
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from bpfree.tuning.options import EngineOptions

from bpfree import datasets
from bpfree.datasets import DatasetError, idx, loading, preprocess

# ../shared/data beside the clone (where the project keeps it; users' clones have none)
REAL_DATA = os.path.abspath(os.environ.get("BPFREE_TEST_REAL_DATA", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "..", "shared", "data")))
SIZES = {"train": 30, "test": 10}


def idx_bytes(array, kind, *, magic=None, dtype_byte=0x08, cut=0):
    """An IDX file's bytes for `array` (uint8), with an optional wrong magic / type byte / cut payload."""
    array = np.asarray(array, np.uint8)
    ndim = idx.DIMS[kind]
    head = (magic if magic is not None else (dtype_byte << 8 | ndim)).to_bytes(4, "big")
    head += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = head + array.tobytes()
    return data[:len(data) - cut] if cut else data


def fixture_arrays(seed=0, classes=10):
    rng = np.random.default_rng(seed)
    return {split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % classes)
            for split, n in SIZES.items()}


def write_idx_dir(path, arrays=None, gz=False, gz_named_raw=False):
    """A directory with the four standard files of `arrays` (fixture_arrays' layout); returns its path."""
    os.makedirs(path, exist_ok=True)
    for split, (x, y) in (arrays or fixture_arrays()).items():
        for stem, array, kind in zip(idx.FILES[split], (x, y), ("images", "labels")):
            data = idx_bytes(array, kind)
            if gz or gz_named_raw:
                data = gzip.compress(data)
            with open(os.path.join(path, stem + (".gz" if gz else "")), "wb") as f:
                f.write(data)
    return str(path)


def one_line_error(call, *fragments):
    with pytest.raises(DatasetError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------ the reader
@pytest.mark.parametrize("layout", ["raw", "gz", "gz_named_raw"])
def test_the_reader_decodes_raw_and_gzip_files_alike(tmp_path, layout):
    arrays = fixture_arrays()
    folder = write_idx_dir(tmp_path / "set", arrays, gz=layout == "gz", gz_named_raw=layout == "gz_named_raw")
    loaded = idx.load(folder)
    for split, (x, y) in arrays.items():
        np.testing.assert_array_equal(loaded[f"x_{split}"], x[..., None])
        np.testing.assert_array_equal(loaded[f"y_{split}"], y)
        assert loaded[f"x_{split}"].dtype == np.uint8 and loaded[f"y_{split}"].dtype == np.int64


@pytest.mark.parametrize("case,stem,fragments", [
    ("bad_magic", "train-images-idx3-ubyte", ["bad magic 0x12345678", "valid: 0x00000803"]),
    ("labels_as_images", "train-images-idx3-ubyte", ["magic 0x00000801", "valid: 0x00000803"]),
    ("wrong_dtype", "t10k-images-idx3-ubyte", ["element type 0x0d", "valid: 0x08"]),
    ("truncated", "train-images-idx3-ubyte", ["truncated", f"expected {30 * 28 * 28}", "30 × 28 × 28"]),
    ("too_long", "t10k-labels-idx1-ubyte", ["too long", "expected 10"]),
    ("count_mismatch", "train-labels-idx1-ubyte", ["30 images but 29 labels", "valid: equal counts"]),
    ("corrupt_gzip", "t10k-labels-idx1-ubyte", ["corrupt gzip"]),
    ("missing", "t10k-labels-idx1-ubyte", ["lacks t10k-labels-idx1-ubyte"]),
])
def test_every_bad_file_is_refused_in_one_line_naming_it(tmp_path, case, stem, fragments):
    folder = write_idx_dir(tmp_path / "set", gz=case == "corrupt_gzip")
    arrays = fixture_arrays()
    path = os.path.join(folder, stem + (".gz" if case == "corrupt_gzip" else ""))
    if case == "bad_magic":
        data = idx_bytes(arrays["train"][0], "images", magic=0x12345678)
    elif case == "labels_as_images":
        data = idx_bytes(arrays["train"][1], "labels")
    elif case == "wrong_dtype":
        data = idx_bytes(arrays["test"][0], "images", dtype_byte=0x0D)
    elif case == "truncated":
        data = idx_bytes(arrays["train"][0], "images", cut=100)
    elif case == "too_long":
        data = idx_bytes(arrays["test"][1], "labels") + b"\0"
    elif case == "count_mismatch":
        data = idx_bytes(arrays["train"][1][:29], "labels")
    elif case == "corrupt_gzip":
        data = gzip.compress(idx_bytes(arrays["test"][1], "labels"))[:-6]
    if case == "missing":
        os.remove(path)
    else:
        with open(path, "wb") as f:
            f.write(data)
    message = one_line_error(lambda: datasets.load(f"idx:{folder}", "train"), *fragments)
    assert (path if case != "missing" else folder) in message


def test_a_directory_that_is_not_one_is_refused(tmp_path):
    one_line_error(lambda: datasets.info(f"idx:{tmp_path / 'nowhere'}"), "does not exist", "train-images-idx3-ubyte")


def digests(arrays):
    return {stem: (len(array), hashlib.md5(idx_bytes(array, kind)).hexdigest())
            for split, pair in arrays.items() for stem, array, kind in zip(idx.FILES[split], pair, ("images", "labels"))}


def test_a_known_set_is_checked_against_its_md5s(tmp_path, monkeypatch):
    """A set named in KNOWN (here: the fixture's own digests under the name "mnist") is verified; one changed
    pixel is refused, naming the file and the expected MD5; files of other counts are read, unverified."""
    arrays = fixture_arrays()
    monkeypatch.setattr(idx, "KNOWN", {"mnist": digests(arrays)})
    folder = write_idx_dir(tmp_path / "mnist", arrays)
    assert datasets.source(f"idx:{folder}") == f"idx ({folder}, md5 verified)"

    changed = {k: (x.copy(), y) for k, (x, y) in arrays.items()}
    changed["test"][0][3, 14, 14] ^= 1
    write_idx_dir(tmp_path / "mnist", changed)
    expected = digests(arrays)["t10k-images-idx3-ubyte"][1]
    one_line_error(lambda: datasets.load(f"idx:{folder}", "test"), "t10k-images-idx3-ubyte", "MD5",
                   f"expected {expected}", "mnist's")

    smaller = {"train": (arrays["train"][0][:20], arrays["train"][1][:20]), "test": changed["test"]}
    write_idx_dir(tmp_path / "mnist", smaller)  # other counts everywhere but the test split: still checked there
    one_line_error(lambda: datasets.load(f"idx:{folder}", "train"), f"expected {expected}")
    write_idx_dir(tmp_path / "mnist", {"train": smaller["train"], "test": (arrays["test"][0][:5], arrays["test"][1][:5])})
    assert datasets.source(f"idx:{folder}").endswith("no known checksum for these files)")
    assert len(datasets.load(f"idx:{folder}", "train")[1]) == 20


def test_a_known_set_is_recognised_by_content_whatever_its_directory_name(tmp_path, monkeypatch):
    arrays = fixture_arrays()
    monkeypatch.setattr(idx, "KNOWN", {"mnist": digests(arrays)})
    changed = {k: (x.copy(), y) for k, (x, y) in arrays.items()}
    changed["train"][0][0, 0, 0] ^= 0x80  # the labels still match mnist's: the images must too
    folder = write_idx_dir(tmp_path / "my_copy", changed)
    one_line_error(lambda: datasets.info(f"idx:{folder}"), "train-images-idx3-ubyte", "MD5")
    other = {k: (x, np.roll(y, 1)) for k, (x, y) in fixture_arrays(seed=5).items()}  # no file in common
    assert idx.identify(write_idx_dir(tmp_path / "other", other)) is None


# ------------------------------------------------------------------------------------------ idx:PATH
def test_idx_path_through_load_info_and_pipeline(tmp_path):
    folder = write_idx_dir(tmp_path / "set")
    name = f"idx:{folder}"
    assert "idx:PATH" in datasets.names()
    meta = datasets.info(name)
    assert (meta.input_shape, meta.num_classes, meta.splits, meta.kind) == ((28, 28, 1), 10, SIZES, "idx")
    x, y = datasets.load(name, "train", scaler="zero_one")
    np.testing.assert_array_equal(x, fixture_arrays()["train"][0][..., None].astype(np.float32) / np.float32(255.0))
    assert x.shape == (30, 28, 28, 1) and y.dtype == np.int64
    xv, _ = datasets.load(name, "validation", validation_frac=0.34)
    assert len(xv) == 10  # one of each class
    xb, yb = next(iter(datasets.pipeline(name, "train", batch_size=8, training=True, seed=0)))
    assert xb.shape == (8, 784) and yb.shape == (8, 10)
    many = fixture_arrays(classes=12)  # labels say 12 classes
    assert datasets.info(f"idx:{write_idx_dir(tmp_path / 'twelve', many)}").num_classes == 12


# ------------------------------------------------------------------------------------------ $BPFREE_DATA_DIR
@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """$BPFREE_DATA_DIR holding a small mnist/ (30 + 10 examples), and an empty tfds data dir."""
    root = tmp_path / "data"
    write_idx_dir(root / "mnist")
    monkeypatch.setenv("BPFREE_DATA_DIR", str(root))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return root


def test_bpfree_data_dir_serves_a_tfds_name_tfds_has_not_prepared(data_dir, tmp_path, monkeypatch):
    meta = datasets.info("mnist")
    assert (meta.input_shape, meta.num_classes, meta.splits, meta.kind) == ((28, 28, 1), 10, SIZES, "idx")
    assert datasets.source("mnist") == f"idx ({data_dir / 'mnist'}, no known checksum for these files)"
    for split, (x_raw, y_raw) in fixture_arrays().items():
        x, y = datasets.load("mnist", split, download=False)
        np.testing.assert_array_equal(x, preprocess.scale(x_raw[..., None], "standard", (0.0, 255.0)))
        np.testing.assert_array_equal(y, y_raw)
    ds = datasets.pipeline("mnist", "train", batch_size=16, training=True, seed=1, download=False)
    assert next(iter(ds))[0].shape == (16, 784)
    # fashion_mnist has no folder there: tfds serves it, as without the variable
    assert datasets.source("fmnist") == f"tfds ({tmp_path / 'tfds'})"
    monkeypatch.delenv("BPFREE_DATA_DIR")
    assert datasets.source("mnist") == f"tfds ({tmp_path / 'tfds'})"
    assert datasets.info("mnist").kind == "tfds"
    monkeypatch.setenv("BPFREE_DATA_DIR", str(tmp_path / "nowhere"))
    one_line_error(lambda: datasets.info("mnist"), "BPFREE_DATA_DIR=", "is not a directory")


def test_a_set_tfds_has_prepared_is_still_served_by_tfds(data_dir, tmp_path):
    import tensorflow_datasets as tfds

    tfds_dir = str(tmp_path / "tfds")
    builder = tfds.builder("mnist", data_dir=tfds_dir)  # "prepared": its metadata where tfds looks
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)
    with tfds.testing.mock_data(num_examples=7, data_dir=tfds_dir):
        assert datasets.source("mnist") == f"tfds ({tfds_dir})"
        x, y = datasets.load("mnist", "train", download=False)
        assert datasets.info("mnist").kind == "tfds"
    assert len(x) == 7 and x.shape[1:] == (28, 28, 1)


@pytest.mark.parametrize("name", ["mnist", "fmnist", "kmnist"])
def test_info_of_the_mnist_sets_needs_no_tfds_builder(name, tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("BPFREE_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds, "builder", lambda *a, **k: pytest.fail("tfds.builder called"))
    meta = datasets.info(name)
    assert (meta.input_shape, meta.num_classes, meta.splits) == ((28, 28, 1), 10, {"train": 60000, "test": 10000})


def test_the_tfds_offline_error_is_unchanged_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("BPFREE_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    one_line_error(lambda: datasets.load("kmnist", "train", download=False), "tfds dataset 'kmnist' could not be loaded",
                   "or set BPFREE_DATA_DIR to a directory holding kmnist/")
    message = one_line_error(lambda: datasets.load("cifar10", "train", download=False), "tfds dataset 'cifar10'")
    assert "BPFREE_DATA_DIR" not in message  # no IDX release of it


# ------------------------------------------------------------------------------------------ mean_std, resize
def test_mean_std_uses_the_whole_training_split_whatever_the_seed(tmp_path):
    folder = write_idx_dir(tmp_path / "set")
    name = f"idx:{folder}"
    raw = fixture_arrays()["train"][0].astype(np.float64) / 255.0
    mean, std = loading.mean_std_stats(name)
    np.testing.assert_allclose(mean, [raw.mean()], rtol=1e-12)
    np.testing.assert_allclose(std, [raw.std()], rtol=1e-9)
    x, _ = datasets.load(name, "train", scaler="mean_std")
    np.testing.assert_allclose([x.mean(), x.std()], [0.0, 1.0], atol=1e-5)
    test_x = datasets.load(name, "test", scaler="mean_std")[0]
    expected = (fixture_arrays()["test"][0][..., None] / 255.0 - raw.mean()) / raw.std()
    np.testing.assert_allclose(test_x, expected, atol=1e-5)
    for kwargs in ({"validation_frac": 0.34}, {"examples_frac": 0.5, "seed": 3}):  # carve-outs change nothing
        np.testing.assert_array_equal(datasets.load(name, "test", scaler="mean_std", **kwargs)[0], test_x)
    assert "mean_std" in datasets.SCALERS


def _scale_as_before(x, scaler, value_range):
    """`preprocess.scale` as it was before mean_std (and before it scaled in place)."""
    x = np.asarray(x, dtype=np.float32)
    if scaler == "identity":
        return x
    lo, hi = (float(v) for v in value_range)
    unit = (x - lo) / (hi - lo if hi > lo else 1.0)
    return (unit * 2.0 - 1.0 if scaler == "standard" else unit).astype(np.float32)


@pytest.mark.parametrize("scaler", ["standard", "zero_one", "identity"])
def test_existing_scalers_are_bit_identical(scaler):
    rng = np.random.default_rng(0)
    for x, value_range in ((rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8), (0.0, 255.0)),
                           (rng.integers(0, 17, (40, 64)).astype(np.float64), (0.0, 16.0)),
                           (rng.normal(size=(30, 40)).astype(np.float32) * 3, (-7.3, 8.1)),
                           (np.ones((3, 3), np.float32), (1.0, 1.0))):
        before, kept = _scale_as_before(x, scaler, value_range), x.copy()
        now = preprocess.scale(x, scaler, value_range)
        assert now.dtype == np.float32 and now.tobytes() == before.tobytes()
        np.testing.assert_array_equal(x, kept)  # the caller's array is left alone


def test_resize_and_pad(tmp_path):
    import tensorflow as tf

    folder = write_idx_dir(tmp_path / "set")
    name = f"idx:{folder}"
    native = datasets.load(name, "test", scaler="zero_one")[0]
    padded = datasets.load(name, "test", scaler="zero_one", input_size=32, resize="pad")[0]
    assert padded.shape == (10, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], native)
    assert not padded[:, :2].any() and not padded[:, :, 30:].any()
    padded_standard = datasets.load(name, "test", input_size=31, resize="pad")[0]  # raw 0 → −1; odd padding
    assert padded_standard.shape == (10, 31, 31, 1)
    assert (padded_standard[:, :1] == -1).all() and (padded_standard[:, 29:] == -1).all()
    resized = datasets.load(name, "test", scaler="identity", input_size=32)[0]
    expected = tf.image.resize(fixture_arrays()["test"][0][..., None].astype(np.float32), (32, 32)).numpy()
    np.testing.assert_allclose(resized, expected, atol=1e-4)
    assert datasets.info(name, input_size=32).input_shape == (32, 32, 1)
    assert datasets.info(name, input_size=20).input_shape == (20, 20, 1)  # bilinear may shrink
    xb, _ = next(iter(datasets.pipeline(name, "train", batch_size=4, input_size=32, resize="pad")))
    assert xb.shape == (4, 1024)
    one_line_error(lambda: datasets.info(name, input_size=20, resize="pad"), "Invalid input_size 20", "28×28")
    one_line_error(lambda: datasets.load(name, "train", input_size=32, resize="nearest"), "Unknown resize 'nearest'")
    one_line_error(lambda: datasets.info("mnist1d", input_size=32), "Invalid input_size 32", "not images")


# ------------------------------------------------------------------------------------------ the search
TINY = """
[search]
dataset = "{dataset}"
objective = "val_error_rate"
batch_size = 16
num_epochs = 1
validation_frac = 0.34

[space]
algorithm = ["bp"]
arch = ["8"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3]
dropout = [0.0]
"""


def test_the_cli_refuses_a_bad_idx_directory_with_exit_2_before_training(tmp_path, cli_in_process):
    folder = write_idx_dir(tmp_path / "set")
    bad = os.path.join(folder, "train-images-idx3-ubyte")
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) - 1)
    preset = tmp_path / "preset.toml"
    preset.write_text(TINY.format(dataset=f"idx:{folder}"))
    proc = cli_in_process(tmp_path / "exp", "--hparams", preset)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: IDX file {bad}: truncated"), lines[-1]
    assert not list((tmp_path / "exp").rglob("execution_*.json"))
    good = f"idx:{write_idx_dir(tmp_path / 'good')}"
    for args, message in ((["--input_size=-1"], "error: Invalid input_size -1: an integer ≥ 0"),
                          (["--resize", "nearest"], "error: Unknown resize 'nearest'; valid: bilinear, pad."),
                          (["--input_size=20", "--resize=pad"], "error: Invalid input_size 20: at least the image size")):
        proc = cli_in_process(tmp_path / "exp2", "--hparams", preset, "--dataset", good, *args)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.splitlines()[-1].startswith(message), proc.stderr[-3000:]
        assert not list((tmp_path / "exp2").rglob("execution_*.json"))


@pytest.mark.parametrize("members", [1, 0])
def test_a_search_on_bpfree_data_dir_records_its_data_source(data_dir, tmp_path, members):
    """Every record names what served the data; it is no search setting, so a resume elsewhere is not refused."""
    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.search import check_record_settings, project_dir, run_search
    from bpfree.tuning.space import SearchSpace

    config = SearchConfig(dataset="mnist", objective="val_error_rate", batch_size=16, num_epochs=1,
                          validation_frac=0.34, input_size=32, resize="pad", scaler="mean_std")
    space = SearchSpace.create({"algorithm": ["bp"], "arch": ["8"], "activation": ["tanh"], "batchnorm": [False],
                                "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0]})
    lines = []
    summary = run_search(str(tmp_path / "exp"), config, space, log=lambda *a: lines.append(" ".join(map(str, a))),
                         engine=engine_for(members))
    assert summary["ran"] == 1 and not summary["accidents"]
    source = f"idx ({data_dir / 'mnist'}, no known checksum for these files)"
    assert f"data: mnist from {source}" in lines
    directory = project_dir(str(tmp_path / "exp"), config, space)
    (path,) = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs if f.startswith("execution_")
               and f.endswith(".json")]
    record = json.loads(open(path).read())
    assert record["status"] == "completed" and record["data_source"] == source
    assert "data_source" not in record["search"] and record["search"]["input_size"] == 32
    record["data_source"] = "tfds (/elsewhere)"
    with open(path, "w") as f:
        json.dump(record, f)
    check_record_settings(directory, config)  # not refused


# ------------------------------------------------------------------------------------------ the real files
MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not os.path.isdir(os.path.join(REAL_DATA, "mnist")), reason=f"no real IDX files in {REAL_DATA}")
def test_the_real_mnist_and_fashion_mnist_files(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFREE_DATA_DIR", REAL_DATA)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # nothing prepared there
    for name, train, test in (("mnist", MNIST_TRAIN, MNIST_TEST), ("fmnist", [6000] * 10, [1000] * 10)):
        folder = os.path.join(REAL_DATA, "fashion_mnist" if name == "fmnist" else name)
        assert datasets.source(name) == f"idx ({folder}, md5 verified)"
        meta = datasets.info(name)
        assert (meta.input_shape, meta.num_classes, meta.splits) == ((28, 28, 1), 10, {"train": 60000, "test": 10000})
        arrays = idx.load(folder)
        assert arrays["x_train"].shape == (60000, 28, 28, 1) and arrays["x_test"].shape == (10000, 28, 28, 1)
        assert np.bincount(arrays["y_train"]).tolist() == train
        assert np.bincount(arrays["y_test"]).tolist() == test
    mean, std = loading.mean_std_stats("mnist")
    np.testing.assert_allclose([mean[0], std[0]], [0.1307, 0.3081], atol=5e-5)  # torchvision's constants

    copy = tmp_path / "mnist"  # one flipped byte of a real file is refused
    copy.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        shutil.copyfile(os.path.join(REAL_DATA, "mnist", stem + ".gz"), copy / (stem + ".gz"))
    data = bytearray(gzip.decompress(open(os.path.join(REAL_DATA, "mnist", "t10k-labels-idx1-ubyte.gz"), "rb").read()))
    data[100] ^= 1
    (copy / "t10k-labels-idx1-ubyte").write_bytes(bytes(data))  # raw this time
    one_line_error(lambda: datasets.info(f"idx:{copy}"), "t10k-labels-idx1-ubyte", "MD5",
                   f"expected {idx.KNOWN['mnist']['t10k-labels-idx1-ubyte'][1]}")


def test_an_experiment_from_before_input_size_resumes_unchanged(tmp_path):
    """config.json and records written before input_size / resize existed read as (0, "bilinear")."""
    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.search import check_config, project_dir, run_search
    from bpfree.tuning.space import SearchSpace

    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1)
    space = SearchSpace.create({"algorithm": ["bp"], "arch": ["8"], "activation": ["tanh"], "batchnorm": [False],
                                "bw_init": ["ortho"], "lr": [1e-3], "dropout": [0.0]})
    assert run_search(str(tmp_path), config, space, log=lambda *a: None, engine=EngineOptions(fit=True))["ran"] == 1
    directory = project_dir(str(tmp_path), config, space)
    paths = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs
             if f == "config.json" or (f.startswith("execution_") and f.endswith(".json"))]
    assert len(paths) == 2
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        assert data["search"].pop("input_size") == 0 and data["search"].pop("resize") == "bilinear"
        with open(path, "w") as f:
            json.dump(data, f)
    assert check_config(directory, config, space) == "same"
    with pytest.raises(ValueError, match="input_size 0 → 16"):
        check_config(directory, SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1,
                                             input_size=16), space)


def test_search_data_loads_each_split_once_for_every_execution(monkeypatch):
    """The fit path's per-execution pipelines gather from the tensors the search holds (no split loaded or
    copied per execution), and give the batches `datasets.pipeline` gives."""
    import tensorflow as tf

    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.search import SearchData

    config = SearchConfig(dataset="digits", num_epochs=2, batch_size=100)
    loads = []
    real_load = datasets.load
    monkeypatch.setattr(datasets, "load", lambda *a, **k: loads.append(a[1]) or real_load(*a, **k))
    data = SearchData(config)
    pipelines = [data.train(seed, 0) for seed in (0, 1, 2)] + [data.validation(), data.test(), data.validation()]
    assert sorted(loads) == ["test", "train", "validation"]
    held = data.in_memory("train").x
    for seed, first_epoch in ((1, 0), (2, 1)):
        expected = real_load("digits", "train", validation_frac=0.1)  # what pipeline(...) would gather from
        alone = datasets.pipeline("digits", "train", batch_size=100, training=True, validation_frac=0.1,
                                  shuffle_seed=seed, epochs=2, first_epoch=first_epoch)
        alone, held_batches = list(alone), list(data.train(seed, first_epoch))
        assert len(alone) == len(held_batches) == (2 - first_epoch) * 13  # 1293 examples, batches of 100
        for (xa, ya), (xb, yb) in zip(alone, held_batches):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        np.testing.assert_array_equal(held.numpy(), expected[0])
    assert all(isinstance(p, tf.data.Dataset) for p in pipelines)


def engine_for(members):
    """0: each execution through fit; n: programs of up to n members."""
    return EngineOptions(fit=True) if members == 0 else EngineOptions(members=members)
