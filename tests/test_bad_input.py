"""Bad input of any kind is refused before anything trains: one `error: …` line naming the bad value,
exit code 2, no record (issue 11, items 4, 7 and 8). Most cases call the validation in-process; a
handful run the CLI or train.bash in a subprocess to check the exit codes and the status file."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from bpfree import rules, seeds
from bpfree.tuning import cli
from bpfree.tuning.config import SearchConfig
from bpfree.tuning.search import validate_points
from bpfree.tuning.presets import load_preset
from bpfree.tuning.space import MAX_GRID_POINTS, SearchSpace, trial_id
from fresh_process import fresh_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-3], "dropout": [0.0]}
TINY = """
[search]
dataset = "digits"
objective = "val_error_rate"
batch_size = 64
num_epochs = {epochs}
{search}

[space]
algorithm = ["bp"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [{lrs}]
dropout = [0.0]
{space}
"""


def write_preset(tmp_path, search="", space="", epochs=1, lrs="1e-3", name="preset.toml", replace=()):
    text = TINY.format(search=search, space=space, epochs=epochs, lrs=lrs)
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_cli(tmp_path, *args, timeout=120, **extra_env):
    return subprocess.run([sys.executable, "-m", "bpfree", str(tmp_path / "exp"), *args], cwd=ROOT,
                          env=fresh_env(**extra_env), capture_output=True, text=True, timeout=timeout)


def assert_refused(proc, tmp_path, *fragments):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert lines[-1].startswith("error: "), proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    assert not list((tmp_path / "exp").rglob("execution_*.json"))
    assert "search done" not in proc.stdout


def refused(fn, *fragments):
    with pytest.raises(ValueError) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    return str(info.value)


def point(**kw):
    p = {"algorithm": "bp", "arch": "16", "activation": "tanh", "batchnorm": False, "bw_init": "ortho", "lr": 1e-3,
         "dropout": 0.0}
    p.update(kw)
    return p


def grid(space, fixed=None, config=None):
    config = config or SearchConfig(dataset="digits", objective="loss")
    space = SearchSpace.create({**SPACE, **space}, fixed, tune_dropout=config.tunes_dropout)
    return space.grid(), config


# ----------------------------------------------------------------------------- the search settings
@pytest.mark.parametrize("name,value", [
    ("seed", -1), ("seed", 2**31), ("seed", 1.5), ("seed", "3"), ("seed", True),
    ("weight_decay", -0.1), ("weight_decay", math.nan), ("weight_decay", math.inf), ("weight_decay", "0"),
    ("batch_size", 1.5), ("batch_size", "64"), ("batch_size", True),
    ("num_epochs", "3"), ("num_epochs", 2.0), ("executions_per_trial", 0), ("executions_per_trial", 2**31),
    ("histogram_freq", 0.5), ("early_stopping_patience", -1), ("early_stopping_patience", 2.5),
    ("use_xla", "no"), ("use_xla", 0), ("use_bias", "true"), ("use_early_stopping", 1),
    ("trackers", "bp_cosine"), ("trackers", ["bp_cosine", 3]),
    ("examples_frac", "0.5"), ("validation_frac", True), ("validation_frac", math.nan),
    ("objective", 3), ("optimizer", ["adam"]), ("dataset", 7), ("scaler", None),
])
def test_search_settings_are_type_and_range_checked(name, value):
    refused(lambda: SearchConfig(**{name: value}), name, repr(value))


def test_the_largest_seed_still_leaves_room_for_every_derived_seed():
    config = SearchConfig(seed=0, executions_per_trial=3)
    assert config.seed == 0
    top = SearchConfig.max_seed(executions_per_trial=3)
    assert top + 2 + seeds.HEADROOM == 2**31 - 1  # execution k: seed + k; a model's streams add ≤ seeds.HEADROOM
    SearchConfig(seed=top, executions_per_trial=3)
    refused(lambda: SearchConfig(seed=top + 1, executions_per_trial=3), str(top + 1), str(top))


def test_valid_settings_are_normalised():
    config = SearchConfig(validation_frac=0, protocol="ancestor", weight_decay=1, trackers=["bp_cosine"])
    assert isinstance(config.validation_frac, float) and isinstance(config.weight_decay, float)
    assert config.trackers == ("bp_cosine",)
    assert SearchConfig(early_stopping_patience=0).early_stopping_patience == 0


@pytest.mark.parametrize("settings,named", [
    ({"validation_frac": 0}, "Invalid validation_frac 0.0"),  # holdout needs a carve-out
    ({"protocol": "ancestor", "validation_frac": 0.2}, "Invalid validation_frac 0.2"),
    ({"protocol": "test"}, "protocol"),
    ({"score": "last0"}, "Invalid score 'last0'"),
])
def test_protocol_and_score_are_checked(settings, named):
    with pytest.raises(ValueError, match=named):
        SearchConfig(**settings)


@pytest.mark.parametrize("old,new,fragments", [
    ("batch_size = 64", "batch_size = 1.5", ["batch_size", "1.5"]),  # read as 1 before
    ("num_epochs = 1", 'num_epochs = "3"', ["num_epochs", "'3'"]),  # a failure of every execution before
    ("[space]", 'use_xla = "no"\n[space]', ["use_xla", "'no'"]),  # compiled before
    ("[space]", 'trackers = "bp_cosine"\n[space]', ["trackers", "'bp_cosine'"]),  # read letter by letter before
    ("[space]", "seed = 2.0\n[space]", ["seed", "2.0"]),
])
def test_preset_search_values_are_type_checked_and_name_the_file(tmp_path, old, new, fragments):
    preset = write_preset(tmp_path, replace=[(old, new)])
    try:
        cli.FLAGS(["bpfree", str(tmp_path / "exp"), "--hparams", preset])
        message = refused(lambda: cli.resolve(["bpfree", str(tmp_path / "exp")]), *fragments)
    finally:
        cli.FLAGS.unparse_flags()
    assert preset in message


def test_a_command_line_flag_still_overrides_the_preset(tmp_path):
    preset = write_preset(tmp_path, search="seed = 4")
    try:
        cli.FLAGS(["bpfree", str(tmp_path / "exp"), "--hparams", preset, "--batch_size", "8", "--seed", "5",
                   "--weight_decay", "0", "--nouse_xla", "--tracker", "bp_cosine"])
        _, config, _ = cli.resolve(["bpfree", str(tmp_path / "exp")])
    finally:
        cli.FLAGS.unparse_flags()
    assert (config.batch_size, config.seed, config.use_xla, config.trackers) == (8, 5, False, ("bp_cosine",))


# ----------------------------------------------------------------------------- presets that cannot be read
def _write(tmp_path, text, name="preset.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_preset_that_is_a_directory(tmp_path):
    refused(lambda: load_preset(str(tmp_path)), str(tmp_path))


def test_a_non_utf8_preset_names_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[space]\nactivation = ["tanh"] # caf\xe9\n'.encode("latin-1"))
    refused(lambda: load_preset(str(path)), str(path), "UTF-8")


def test_a_deeply_nested_preset(tmp_path):
    path = _write(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(lambda: load_preset(str(path)), str(path))


@pytest.mark.parametrize("text", ["search = 3\n", "space = [1, 2]\n", "[space]\nlr = {a = 1}\n"])
def test_tables_of_the_wrong_shape(tmp_path, text):
    path = _write(tmp_path, text)

    def load_and_create():
        search, space = load_preset(str(path))
        SearchConfig(**search)
        SearchSpace.create({**SPACE, **space})

    refused(load_and_create)


@pytest.mark.parametrize("space,fragments", [
    ({"lr": [True]}, ["lr", "True"]), ({"dropout": [False]}, ["dropout", "False"]),
    ({"batchnorm": ["no"]}, ["batchnorm", "'no'"]), ({"arch": [[16.7]]}, ["arch", "16.7"]),
    ({"lr": ["1e-3"]}, ["lr", "'1e-3'"]),
])
def test_space_values_are_type_checked(space, fragments):
    refused(lambda: SearchSpace.create({**SPACE, **space}), *fragments)


@pytest.mark.parametrize("value,ok", [("30", True), (" 12 ", True), ("2.5", False), ("3e1", False), ("", False)])
def test_rule_hparams_from_the_command_line_are_parsed_strictly(value, ok):
    create = lambda: SearchSpace.create({**SPACE, "algorithm": ["gle"]}, {"gle.steps": value})  # noqa: E731
    if ok:
        assert create().grid()[0]["steps"] == int(value)
    else:
        refused(create, "steps", repr(value))


def test_a_grid_too_large_to_hold_is_refused_before_it_is_built():
    huge = {"lr": [10.0 ** -k for k in range(1, 101)], "arch": [str(w) for w in range(1, 101)],
            "dropout": [k / 1000 for k in range(100)], "activation": ["tanh", "relu"] * 1}
    message = refused(lambda: SearchSpace.create({**SPACE, **huge}), "2000000", str(MAX_GRID_POINTS))
    assert "grid points" in message


# ----------------------------------------------------------------------------- every grid point's hparams
@pytest.mark.parametrize("algorithm", ["gle", "le"])
@pytest.mark.parametrize("name,value", [
    ("steps", 0), ("steps", -3), ("steps", 2.5), ("dt", -0.1), ("dt", 0.0), ("tau", 0.0), ("tau", math.inf),
    ("beta", math.nan), ("beta", -1.0), ("gamma", -0.5), ("tau_profile", "fast"), ("tau", 0.1),
])
def test_gle_hparams_are_checked_before_training(algorithm, name, value):
    if name == "tau_profile" and algorithm == "le":
        pytest.skip("LE has no tau profile")

    def check():
        points, config = grid({"algorithm": [algorithm], algorithm: {name: [value]}})
        validate_points(points, config)

    refused(check, name, repr(value) if name != "tau" or value != 0.1 else "0.1")


# A value outside each rule hparam's range; every registered rule's every own hparam is listed.
BAD_RULE_HPARAMS = {
    "alpha_t": -1.0, "inverse_noise": -0.5, "gamma": -1.0, "num_steps_rinv": -1, "lr_rinv": 0.0,
    "orthogonal_reg": -0.1, "orthogonal_init": "maybe", "dt": -0.2, "tau": -1.2, "tau_profile": "fast",
    "beta": math.nan, "steps": 0, "f_scale": -0.05, "output_error": "last", "threshold": 0.0, "decay": -1.0,
    "projection_pool": 0, "conv_update": "sqrt", "project_before_pool": "maybe",
}
RULE_HPARAMS = sorted({(r, name) for r in rules.names() for name in rules.rule_class(r).hparams()})


def test_every_rule_hparam_has_a_bad_value_here():
    assert {name for _, name in RULE_HPARAMS} <= set(BAD_RULE_HPARAMS)


@pytest.mark.parametrize("algorithm,name", RULE_HPARAMS)
def test_every_rule_hparam_is_range_checked(algorithm, name):
    base = {"activation": "lrelu", "arch": "64"} if algorithm in ("gait", "tp", "bp_inv") else {}

    def check():
        points, config = grid({"algorithm": [algorithm], algorithm: {name: [BAD_RULE_HPARAMS[name]]},
                               **{k: [v] for k, v in base.items()}})
        validate_points(points, config)

    refused(check, name)


def test_the_defaults_of_every_rule_pass():
    for algorithm in rules.names():
        base = {"activation": ["lrelu"], "arch": ["64"]} if algorithm in ("gait", "tp", "bp_inv") else {}
        points, config = grid({"algorithm": [algorithm], **base})
        validate_points(points, config)


def test_a_network_too_large_for_memory_is_refused():
    points, config = grid({"arch": ["10000000-10000000"]})
    message = refused(lambda: validate_points(points, config), "10000000-10000000", "bytes")
    assert "bp" in message


def test_on_a_gpu_the_gpu_memory_is_the_limit(monkeypatch):
    from bpfree.tuning import validation

    monkeypatch.setattr(validation, "gpu_memory_bytes", lambda: 2**30)  # a 1 GiB GPU
    points, config = grid({"arch": ["10000-10000"]})  # 10⁸ parameters: 1.6 GB with gradients and Adam
    refused(lambda: validate_points(points, config), "10000-10000", "its GPU has 1073741824 bytes")
    monkeypatch.setattr(validation, "gpu_memory_bytes", lambda: None)
    validate_points(points, config)


@pytest.mark.parametrize("config,fragment", [
    (dict(dataset="digits", validation_frac=0.999), "0.999"),
    (dict(dataset="xor", validation_frac=0.9), "0.9"),
    (dict(dataset="digits", validation_frac=0.999, examples_frac=0.5), "0.999"),
])
def test_a_validation_frac_that_leaves_no_training_data(config, fragment):
    points, config = grid({}, config=SearchConfig(objective="loss", **config))
    refused(lambda: validate_points(points, config), "validation_frac", fragment)


def test_a_validation_frac_that_leaves_data_passes():
    for config in (dict(dataset="xor", validation_frac=0.5), dict(dataset="digits", validation_frac=0.9,
                                                                     examples_frac=0.1)):
        points, config = grid({}, config=SearchConfig(objective="loss", **config))
        validate_points(points, config)


# ----------------------------------------------------------------------------- trial ids
def test_short_trial_ids_are_unchanged():
    assert trial_id(point(algorithm="dfa", arch="500-500")) == "dfa-500-500-tanh-bwortho-lr0.001-1a7c4d"
    assert trial_id(point(algorithm="gait", arch="784-784-784-784", activation="lrelu", lr=1e-4, orthogonal_reg=0.1,
                          orthogonal_init=True)) == "gait-784-784-784-784-lrelu-bwortho-lr0.0001-orthogonal_reg0.1-00e106"


def test_long_trial_ids_fit_a_file_name_and_stay_unique(tmp_path):
    arch = "-".join(["100"] * 55)
    ids = {trial_id(point(algorithm="gle", arch=arch, dt=0.1, tau=2.4, tau_profile="lag", gamma=0.1, beta=0.1,
                          steps=s)) for s in range(1, 200)}
    assert len(ids) == 199
    for tid in ids:
        assert len(tid.encode()) <= 255 and tid.startswith("gle-100-100-")
        (tmp_path / tid).mkdir()  # a valid directory name here


# ----------------------------------------------------------------------------- the CLI, end to end
@pytest.mark.parametrize("case", ["seed", "gle_steps", "huge_arch", "float_batch_size", "tuner_id", "directory"])
def test_cli_refuses_bad_input_with_exit_2(tmp_path, case, cli_in_process):
    """The first case as a real `python -m bpfree` process, the others through the CLI's main in-process."""
    preset, args, extra, fragments = write_preset(tmp_path), [], {}, []
    if case == "seed":
        args, fragments = ["--seed=-1"], ["seed", "-1"]
    elif case == "gle_steps":
        preset = write_preset(tmp_path, space="gle.steps = [0]", replace=[('algorithm = ["bp"]', 'algorithm = ["gle"]')])
        fragments = ["steps", "0"]
    elif case == "huge_arch":
        args, fragments = ["--arch", "10000000-10000000"], ["10000000-10000000", "bytes"]
    elif case == "float_batch_size":
        preset = write_preset(tmp_path, replace=[("batch_size = 64", "batch_size = 1.5")])
        fragments = ["batch_size", "1.5"]
    elif case == "tuner_id":
        extra, fragments = {"KERASTUNER_TUNER_ID": "../records"}, ["KERASTUNER_TUNER_ID", "'../records'"]
        keep = tmp_path / "exp" / "digits-classification-val_error_rate" / "records" / "keep.txt"
        keep.parent.mkdir(parents=True)
        keep.write_text("records of an earlier search")
    elif case == "directory":
        preset, fragments = str(tmp_path), [str(tmp_path)]
    if case == "seed":
        proc = run_cli(tmp_path, "--hparams", preset, *args, **extra)
    else:
        proc = cli_in_process(tmp_path / "exp", "--hparams", preset, *args, **extra)
    assert_refused(proc, tmp_path, *fragments)
    if case == "tuner_id":
        assert keep.exists()


def test_an_offline_tfds_load_fails_fast_with_one_line(tmp_path):
    """kmnist is not prepared in an empty TFDS_DATA_DIR and every download goes to a closed proxy port."""
    closed = "http://127.0.0.1:9"
    start = time.monotonic()
    try:
        proc = run_cli(tmp_path, "--hparams", write_preset(tmp_path), "--dataset", "kmnist", timeout=90,
                       TFDS_DATA_DIR=str(tmp_path / "tfds"), HTTP_PROXY=closed, HTTPS_PROXY=closed,
                       http_proxy=closed, https_proxy=closed, NO_PROXY="", no_proxy="")
    except subprocess.TimeoutExpired:
        pytest.fail(f"the offline load still retried after {time.monotonic() - start:.0f} s")
    assert_refused(proc, tmp_path, "kmnist", str(tmp_path / "tfds"), "download_and_prepare")


# ----------------------------------------------------------------------------- train.bash
def train_bash(exp, preset, **kwargs):
    bindir = os.path.join(os.path.dirname(exp), "bin")
    os.makedirs(bindir, exist_ok=True)
    wrapper = os.path.join(bindir, "python3")  # train.bash runs `python3` with BPFREE_SYSTEM_PYTHON set
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a wrapper, not a link: a venv needs its path
    os.chmod(wrapper, 0o755)
    e = fresh_env(BPFREE_SYSTEM_PYTHON="1", PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    # --yes: these searches are made long on purpose (10,000 epochs), to be stopped mid-way
    return subprocess.Popen(["bash", os.path.join(ROOT, "train.bash"), exp, "--hparams", preset, "--yes"], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)


def wait_until_training(exp, proc, timeout=120):
    """The pid in the search's lock, once the search holds it and train.bash says `running`."""
    lock = os.path.join(exp, "digits-classification-val_error_rate", ".search.lock")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            pid = int(open(lock).read().strip() or 0)
            status = open(os.path.join(exp, "status")).read()
        except (OSError, ValueError):
            pid, status = 0, ""
        if pid and status.startswith("running"):
            return pid
        time.sleep(0.2)
    raise AssertionError("the search never started")


def cleanup(proc, pid=None):
    """Kills what a failed test left: train.bash's group and the search's (its own group under setsid)."""
    for group in (proc.pid, pid):
        try:
            if group:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.communicate()


def test_train_bash_a_refused_second_run_keeps_the_status_and_sigterm_stops(tmp_path):
    exp, preset = str(tmp_path / "exp"), write_preset(tmp_path, epochs=10_000, lrs="1e-3, 1e-2, 1e-1")
    first, pid = train_bash(exp, preset), None
    try:
        pid = wait_until_training(exp, first)
        status = open(os.path.join(exp, "status")).read()
        time.sleep(1.1)  # a rewrite would change the time stamp
        second = train_bash(exp, preset)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "Another search is running" in err, err
        assert open(os.path.join(exp, "status")).read() == status
        os.kill(pid, signal.SIGTERM)  # the pid the lock message names
        _, err = first.communicate(timeout=60)
        assert first.returncode == 143, err
        assert open(os.path.join(exp, "status")).read().startswith("stopped"), err
        assert "restart 1 of 5" not in err
    finally:
        cleanup(first, pid)


@pytest.mark.parametrize("how,rc", [("ctrl-c", 130), ("sigterm", 143)])
def test_train_bash_stops_on_ctrl_c_and_sigterm(tmp_path, how, rc):
    exp, preset = str(tmp_path / "exp"), write_preset(tmp_path, epochs=10_000)
    proc, pid = train_bash(exp, preset), None
    try:
        pid = wait_until_training(exp, proc)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole foreground group
        else:
            os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == rc, err
        assert open(os.path.join(exp, "status")).read().startswith("stopped"), err
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the search is gone too
    finally:
        cleanup(proc, pid)
