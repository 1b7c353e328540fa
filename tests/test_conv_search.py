"""Conv archs in searches: each trial gets the inputs its arch needs (images for convolutions, flat
vectors for dense layers), conv archs on non-image data are refused before training, parameter counts
of conv nets, the conv presets."""

import glob
import os

import numpy as np
import pytest

from bpfree.tuning.options import EngineOptions
from tensorflow.compat.v1.train import summary_iterator

from bpfree import build_model, datasets, records
from bpfree.tuning import BpfreeHyperModel, SearchConfig, SearchSpace, load_preset, run_search, search, trial_id
from bpfree.tuning.space import SpaceError
from bpfree.tuning.validation import check_memory, parameter_count, validate_points

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET5 = "conv6k5-pool2-conv16k5-pool2-120-84"
CONV, DENSE = "conv4k3-pool2-16", "16"
SPACE = {"algorithm": ["bp", "usf"], "arch": [CONV, DENSE], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}


def completed(directory):
    found = {}
    for path in records.iter_record_paths(directory):
        data = records.read(path)
        found[data["trial_id"]] = data
    return found


@pytest.fixture
def seen(monkeypatch):
    """Records (arch, model input_dim) per built model and (flatten, batch shape) per training pipeline."""
    built, fed = [], []
    build, train = BpfreeHyperModel.build, search.SearchData.train

    def spy_build(self, hp, seed=None):
        model = build(self, hp, seed=seed)
        built.append((hp.get("arch"), model.network_config.input_dim))
        return model

    def spy_train(self, shuffle_seed, first_epoch, flatten=True):
        ds = train(self, shuffle_seed, first_epoch, flatten=flatten)
        fed.append(tuple(next(iter(ds))[0].shape))
        return ds

    monkeypatch.setattr(BpfreeHyperModel, "build", spy_build)
    monkeypatch.setattr(search.SearchData, "train", spy_train)
    return built, fed


def test_a_grid_mixing_conv_and_dense_archs_on_digits_feeds_each_its_shape(tmp_path, seen):
    built, fed = seen
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1, batch_size=128, use_xla=False,
                          histogram_freq=1)
    space = SearchSpace.create(SPACE)
    summary = run_search(str(tmp_path), config, space, log=lambda *a: None, engine=EngineOptions(fit=True))  # fit's path, spied on
    found = completed(summary["project_dir"])
    for tid in found:  # activation histograms, from a sample of each trial's own inputs (images for conv trials)
        events = glob.glob(os.path.join(summary["project_dir"], "tensorboard", tid, "execution_0", "events*"))
        assert "activations/layer_1" in {v.tag for path in events for e in summary_iterator(path) for v in e.summary.value}
    assert set(found) == {trial_id(p) for p in space.grid()} and len(found) == 4
    assert all(d["status"] == "completed" and np.isfinite(d["history"]["val_loss"][0]) for d in found.values())
    assert {(d["hparams"]["algorithm"], d["hparams"]["arch"]) for d in found.values()} == \
        {(a, r) for a in ("bp", "usf") for r in (CONV, DENSE)}
    # The conv trials' networks read 8×8×1 images and were fed them; the dense ones 64 features.
    assert sorted(built, key=str) == sorted([(CONV, (8, 8, 1)), (DENSE, 64)] * 2, key=str)
    shapes = [shape for (arch, _), shape in zip(built, fed[1:])]  # fed[0]: SearchData's own steps count
    for (arch, _), shape in zip(built, shapes):
        assert shape == ((128, 8, 8, 1) if arch == CONV else (128, 64)), (arch, shape)


def test_digits_flattens_to_the_same_64_features_in_the_same_order():
    flat = next(iter(datasets.pipeline("digits", "test", batch_size=360)))[0].numpy()
    images = next(iter(datasets.pipeline("digits", "test", batch_size=360, flatten=False)))[0].numpy()
    assert datasets.info("digits").input_shape == (8, 8, 1) and images.shape == (360, 8, 8, 1)
    np.testing.assert_array_equal(flat, images.reshape(360, 64))
    x, _ = datasets.load("digits", "test")
    np.testing.assert_array_equal(images, x)  # the raw images, row-major: dense results do not change


@pytest.mark.parametrize("dataset", ["mnist1d", "yinyang", "xor"])
def test_conv_archs_on_data_that_are_not_images_are_refused(dataset):
    config = SearchConfig(dataset=dataset, objective="loss")
    points = SearchSpace.create({**SPACE, "arch": [DENSE, CONV]}).grid()
    with pytest.raises(ValueError) as error:
        validate_points(points, config)
    message = str(error.value)
    assert f"Invalid arch '{CONV}' for dataset '{dataset}': convolutions need images" in message
    assert "valid: a dense arch" in message and "digits" in message and "\n" not in message


def test_cli_refuses_a_conv_arch_on_mnist1d_with_exit_2_before_training(tmp_path, cli_in_process):
    preset = os.path.join(REPO, "hparams", "quickstart.toml")
    done = cli_in_process(str(tmp_path / "exp"), "--hparams", preset, "--algorithm", "bp", "--arch", "conv8k3-pool2-32")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid arch 'conv8k3-pool2-32' for dataset 'mnist1d'")
    assert not list((tmp_path / "exp").rglob("execution_*.json"))


def test_cli_accepts_conv_archs_and_refuses_bad_tokens(tmp_path, cli_in_process):
    from absl import flags

    from bpfree.tuning import cli

    flags.FLAGS.unparse_flags()
    try:
        argv = flags.FLAGS(["bpfree", str(tmp_path), "--hparams", os.path.join(REPO, "hparams", "lenet5.toml"),
                            "--arch", "conv8k3s2-avgpool2-fc32", "--algorithm", "usf"])
        _, config, space = cli.resolve(argv)
    finally:
        flags.FLAGS.unparse_flags()
    assert [p["arch"] for p in space.grid()] == ["conv8k3s2-avgpool2-32"] * 2  # records spell fc32 as 32
    validate_points(space.grid(), config)
    bad = cli_in_process(str(tmp_path / "bad"), "--dataset", "digits", "--arch", "conv8k3-pool2-conv4x3")
    assert bad.returncode == 2 and bad.stderr.startswith("error: Invalid arch 'conv8k3-pool2-conv4x3': unknown "
                                                         "token 'conv4x3'") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("arch,fragment", [
    ("pool2-16", "does not follow a convolution"), ("16-conv4k3", "comes after a dense layer"),
    ("conv0k3", "needs positive numbers"), ([16.0], "16.0"),
])
def test_the_space_checks_archs_with_the_arch_grammar(arch, fragment):
    with pytest.raises(SpaceError) as error:
        SearchSpace.create({**SPACE, "arch": [arch]})
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_rule_without_convolutions_is_refused_a_conv_arch_in_one_line():
    with pytest.raises(ValueError) as error:
        validate_points(SearchSpace.create({**SPACE, "algorithm": ["dtp"]}).grid(),
                        SearchConfig(dataset="digits", objective="loss"))
    assert "dtp" in str(error.value) and "fully connected" in str(error.value) and "\n" not in str(error.value)


def test_parameter_count_of_lenet5_is_the_hand_count():
    conv1 = 6 * (5 * 5 * 1) + 6
    conv2 = 16 * (5 * 5 * 6) + 16
    flat = 7 * 7 * 16  # 'same' padding: 28 → pool 14 → pool 7
    fc1, fc2, out = flat * 120 + 120, 120 * 84 + 84, 84 * 10 + 10
    assert parameter_count(LENET5, (28, 28, 1), 10) == conv1 + conv2 + fc1 + fc2 + out == 107786
    no_bias = 6 * 25 + 16 * 25 * 6 + flat * 120 + 120 * 84 + 84 * 10
    assert parameter_count(LENET5, (28, 28, 1), 10, use_bias=False) == no_bias
    # Strides round up, poolings down: 32 → s2 16 → avgpool3 5; 5·5·8 features reach the output layer.
    assert parameter_count("conv8k3s2-avgpool3", (32, 32, 3), 10) == 8 * 27 + 8 + 5 * 5 * 8 * 10 + 10
    model = build_model("bp", LENET5, (28, 28, 1), 10, seed=0)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == 107786


def test_check_memory_counts_convolutions():
    config = SearchConfig(dataset="cifar10")
    point = {"algorithm": "bp", "arch": "conv32k3-4096"}  # 32·32·32 · 4096 ≈ 134 M weights in the dense layer
    check_memory(point, config, (32, 32, 3), 10, memory=(2**32, "this machine has"))
    with pytest.raises(ValueError) as error:
        check_memory(point, config, (32, 32, 3), 10, memory=(2**30, "this machine has"))
    assert f"its {parameter_count('conv32k3-4096', (32, 32, 3), 10)} parameters" in str(error.value)


def test_hypermodel_gives_conv_archs_the_image_and_dense_archs_the_features():
    import keras_tuner

    for arch, expected in ((CONV, (8, 8, 1)), (DENSE, 64)):
        hp = keras_tuner.HyperParameters()
        space = SearchSpace.create({**SPACE, "arch": [arch]})
        model = BpfreeHyperModel(space, SearchConfig(dataset="digits"), (8, 8, 1), 10).build(hp)
        assert model.network_config.input_dim == expected


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_mock_tfds_images_train_conv_and_dense_trials(name, shape, tmp_path, monkeypatch, seen):
    import tensorflow_datasets as tfds

    built, fed = seen
    monkeypatch.setenv("BPFREE_TFDS_DOWNLOAD", "0")
    # The test split validates (64 mock examples leave no full batch to a carve-out); fit's path, spied on.
    config = SearchConfig(dataset=name, objective="loss", num_epochs=1, batch_size=32, use_xla=False,
                          protocol="ancestor")
    space = SearchSpace.create({**SPACE, "arch": ["conv4k3-pool2-pool2-16", DENSE]})
    with tfds.testing.mock_data(num_examples=64):
        data = search.SearchData(config)
        images = next(iter(data.train(0, 0, flatten=False)))[0]
        flat = next(iter(data.validation(flatten=True)))[0]
        assert tuple(images.shape) == (32, *shape) and tuple(flat.shape) == (32, int(np.prod(shape)))
        summary = run_search(str(tmp_path), config, space, log=lambda *a: None, engine=EngineOptions(fit=True))
    found = completed(summary["project_dir"])
    assert len(found) == 4 and all(d["status"] == "completed" for d in found.values())
    assert all(np.isfinite(d["history"]["loss"][0]) for d in found.values())
    assert sorted(i for a, i in built if a != DENSE) == [shape] * 2
    assert sorted(s for s in fed[2:] if len(s) == 4) == [(32, *shape)] * 2


def test_the_presets_parse_and_the_conv_ones_validate():
    paths = sorted(glob.glob(os.path.join(REPO, "hparams", "*.toml")))
    assert {"lenet5.toml", "vgg_small.toml"} <= {os.path.basename(p) for p in paths}
    for path in paths:
        settings, space = load_preset(path)
        config = SearchConfig(**settings)
        SearchSpace.create(space, tune_dropout=config.tunes_dropout)
    settings, space = load_preset(os.path.join(REPO, "hparams", "lenet5.toml"))
    lenet = SearchSpace.create(space)
    assert lenet.as_dict()["arch"] == (LENET5,) and lenet.as_dict()["activation"] == ("relu",)
    assert set(lenet.as_dict()["algorithm"]) == {"bp", "fa", "dfa", "usf", "brsf", "frsf", "kp", "drtp"}
    validate_points(lenet.grid(), SearchConfig(**settings))
    settings, space = load_preset(os.path.join(REPO, "hparams", "vgg_small.toml"))
    vgg = SearchSpace.create(space)
    assert {p["projection_pool"] for p in vgg.grid() if p["algorithm"] in ("dfa", "drtp")} == {1, 2}
    validate_points(vgg.grid(), SearchConfig(**settings))
    assert datasets.info("cifar10").input_shape == (32, 32, 3)


def test_the_readme_conv_commands_resolve_and_validate(tmp_path):
    import shlex

    from absl import flags

    from bpfree.tuning import cli

    with open(os.path.join(REPO, "README.md")) as f:
        commands = [shlex.split(line) for line in f.read().splitlines()
                    if line.startswith(("./train.bash data/lenet5", "./train.bash data/vgg_small"))]
    assert len(commands) == 2
    try:
        for command in commands:
            flags.FLAGS.unparse_flags()
            _, config, space = cli.resolve(flags.FLAGS(["bpfree"] + [a.replace("hparams/", REPO + "/hparams/")
                                                                     for a in command[1:]]))
            validate_points(space.grid(), config)
            assert all("conv" in p["arch"] for p in space.grid())
    finally:
        flags.FLAGS.unparse_flags()


def test_a_conv_arch_for_reconstruction_is_refused_before_training():
    from bpfree.tuning.validation import validate_points

    config = SearchConfig(dataset="digits", problem_type="reconstruction", objective="val_loss")
    point = {"algorithm": "bp", "arch": "conv4k3-16", "activation": "tanh", "batchnorm": False, "dropout": 0.0,
             "bw_init": "ortho", "lr": 1e-3}
    with pytest.raises(ValueError, match="Invalid arch 'conv4k3-16' for problem_type 'reconstruction'"):
        validate_points([point], config)
