"""The command line's manners (issue 15): --help lists bpfree's own flags and exits 0, TensorFlow's start-up
noise stays off the console unless --verbose, the coordinator listens where it is told (loopback by
default) and says so beyond it, and batch norm has one flag name (the ancestor's still accepted)."""

import os
import re
import socket
import subprocess
import sys

import pytest
from absl import flags

from bpfree import console
from bpfree.tuning import cli, distributed
from bpfree.tuning.distributed import free_port
from bpfree.tuning.space import trial_id

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What TensorFlow and absl print on their own: C++ log lines (I0000 00:00:17.5 123 file.cc:31] ...), the
# banner absl prints before its logging is initialised, the CPU-feature notice's second line, absl's Python
# warnings (tfds), in either of their formats.
LOG_LINE = re.compile(r"^[IWEF]\d{4} \S+\s+\d+ \S+:\d+\] ")
NOISE = ("absl::InitializeLog()", "rebuild TensorFlow with the appropriate compiler flags", "WARNING:absl:")
ONE_POINT = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 1

[space]
algorithm = ["bp"]
arch = ["8"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3]
dropout = [0.0]
"""


def noise(stderr):
    return [line for line in stderr.splitlines() if LOG_LINE.match(line) or any(n in line for n in NOISE)]


def user_env(**extra):
    """The environment of a user's shell: the test session's TF_CPP_MIN_LOG_LEVEL (conftest) left out."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, "PYTHONPATH": os.path.join(ROOT, "src"), **extra}


def bpfree(*args, timeout=300, **extra):
    return subprocess.run([sys.executable, "-m", "bpfree", *map(str, args)], cwd=ROOT, env=user_env(**extra),
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------------- --help
def test_help_lists_bpfrees_own_flags_with_defaults_and_choices():
    proc = bpfree("--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for name in (*cli.SEARCH_FLAGS, *cli.HPARAM_FLAGS, "hparams", "tracker", "rule_hparam", "workers", "oracle_bind",
                 "verbose", "reset_training", "experiment_dir"):
        assert re.search(rf"^  --(\[no\])?{name}\b", out, re.M), name
    assert "one of tanh, relu, lrelu, swish, sigmoid, linear" in out  # choices
    assert "(default: 30 from hparams/quickstart.toml)" in out and "(default: standard)" in out  # defaults
    assert "(default: bp, fa, dfa, drtp from hparams/quickstart.toml)" in " ".join(out.split())  # the preset's list
    assert "--[no]batchnorm (or --[no]batch_norm)" in out
    assert "--flagfile" not in out and "Try --helpfull" not in out  # absl's own flags only with --helpfull
    assert noise(proc.stderr) == [], proc.stderr[-3000:]


def test_helpfull_keeps_absls_full_listing_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bpfree", "--helpfull"])
    try:
        with pytest.raises(SystemExit) as done:
            cli.run()
    finally:
        flags.FLAGS.unparse_flags()
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--flagfile" in out and "--algorithm" in out and "--oracle_bind" in out


@pytest.mark.slow  # the fast tier checks python -m bpfree --help; train.bash only hands it over
def test_train_bash_help_lists_the_flags_and_exits_0(tmp_path):
    wrapper = tmp_path / "bin" / "python3"  # train.bash runs `python3` with BPFREE_SYSTEM_PYTHON set
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    proc = subprocess.run(["bash", os.path.join(ROOT, "train.bash"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=user_env(BPFREE_SYSTEM_PYTHON="1",
                                                               PATH=f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--algorithm" in proc.stdout and "--workers" in proc.stdout
    assert not list(tmp_path.glob("--help*"))  # not taken for an experiment directory


# ------------------------------------------------------------------------------------- start-up noise
def test_a_tiny_search_starts_quietly(tmp_path):
    preset = tmp_path / "one.toml"
    preset.write_text(ONE_POINT)
    proc = bpfree(tmp_path / "exp", "--hparams", preset)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search done" in proc.stdout
    assert noise(proc.stderr) == [], proc.stderr[-3000:]


@pytest.mark.parametrize("verbose", [False, True])
def test_bad_input_is_the_only_line_on_stderr_unless_verbose(tmp_path, verbose):
    """A bad flag or preset is refused before TensorFlow loads (issue 22), so it is the only line even with
    --verbose; a point refused once TensorFlow has loaded (its rule checks it) brings TensorFlow's lines
    back with --verbose only."""
    missing = tmp_path / "missing.toml"
    proc = bpfree(tmp_path / "exp", "--hparams", missing, *(["--verbose"] if verbose else []))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: Hparams file '{missing}' does not exist."]
    preset = tmp_path / "one.toml"
    preset.write_text(ONE_POINT)
    proc = bpfree(tmp_path / "exp", "--hparams", preset, "--algorithm", "drtp", "--problem_type", "reconstruction",
                  "--objective", "val_loss", *(["--verbose"] if verbose else []))
    assert proc.returncode == 2
    error = "error: drtp needs class targets: problem_type 'reconstruction' is not supported"
    if verbose:  # TensorFlow's own start-up lines are back (at level 0 at least its CPU-feature notice)
        assert noise(proc.stderr) and proc.stderr.splitlines()[-1].startswith(error), proc.stderr[-3000:]
    else:
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(error), proc.stderr[-3000:]


def test_the_start_up_filter_drops_known_noise_and_keeps_every_other_line(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # errors: what TensorFlow itself shows at level 2
    kept = ["E0000 00:00:1795566156.355475    6501 other.cc:52] a real error", "a line of another library"]
    dropped = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
               "I0000 00:00:1795566152.013201    6501 cudart_stub.cc:31] Could not find cuda drivers on your "
               "machine, GPU will not be used.",
               "W0000 00:00:1795566152.013201    6501 other.cc:1] below level 2, logged before absl's initialisation",
               "E0000 00:00:1795566156.355475    6501 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
               "error: Failed call to cuInit: UNKNOWN ERROR (303)",
               "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags."]
    capfd.readouterr()
    with console.filtered_stderr():
        for line in (dropped[0], kept[0], *dropped[1:], *kept[1:]):
            os.write(2, f"{line}\n".encode())  # as a C++ library writes: file descriptor 2
    assert capfd.readouterr().err.splitlines() == kept


def test_what_tensorflow_prints_before_an_abort_still_reaches_the_console(tmp_path):
    script = tmp_path / "abort.py"
    script.write_text(f"import importlib.util, os\n"
                      f"spec = importlib.util.spec_from_file_location('console', {console.__file__!r})\n"
                      "console = importlib.util.module_from_spec(spec)\n"
                      "spec.loader.exec_module(console)\n"
                      "with console.filtered_stderr():\n"
                      "    os.write(2, b'F0000 00:00:17.5 1 cpu_feature_guard.cc:1] compiled to use AVX: not here\\n')\n"
                      "    os.abort()\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "compiled to use AVX: not here" in proc.stderr


@pytest.mark.parametrize("argv,orig_argv,args", [
    (["-m", "exp", "--lr", "1"], ["python", "-m", "bpfree", "exp", "--lr", "1"], ["exp", "--lr", "1"]),
    (["-m", "exp"], ["python", "-u", "-X", "dev", "-m", "bpfree.experiments.lagline", "exp"], ["exp"]),
    (["-m", "exp"], ["python", "-mbpfree", "exp"], ["exp"]),
    (["-m", "exp"], ["python", "-m", "pytest", "exp"], None),  # another module
    (["script.py", "-m", "bpfree"], ["python", "script.py", "-m", "bpfree"], None),  # a script
    (["-c"], ["python", "-c", "import bpfree"], None),
])
def test_only_bpfrees_command_lines_are_quieted(argv, orig_argv, args):
    assert console.command_line(argv, orig_argv) == args


@pytest.mark.parametrize("args,env,verbose", [
    (["exp", "--verbose"], {}, True), (["--verbose=true"], {}, True), (["--verbose", "--noverbose"], {}, False),
    (["--verbose=false"], {}, False), (["--", "--verbose"], {}, False), (["--verbose_x"], {}, False),
    ([], {"TF_CPP_MIN_LOG_LEVEL": "0"}, True), ([], {"TF_CPP_MIN_LOG_LEVEL": "2"}, False), ([], {}, False),
])
def test_verbose_is_read_before_tensorflow_loads(args, env, verbose):
    assert console.wants_verbose(args, env) is verbose


# ------------------------------------------------------------------------------------------ batch norm
@pytest.mark.parametrize("args,values", [
    ([], (False,)),  # hparams/quickstart.toml's
    (["--hparams", os.path.join(ROOT, "hparams", "default.toml")], (False, True)),  # default.toml searches both
    (["--batchnorm=false,true"], (False, True)), (["--batch_norm=true,false"], (True, False)),  # a list
    (["--batchnorm"], (True,)), (["--nobatchnorm"], (False,)), (["--batchnorm=false"], (False,)),
    (["--batch_norm"], (True,)), (["--nobatch_norm"], (False,)),  # the ancestor's spelling
])
def test_batchnorm_has_one_flag_name_and_the_ancestors_still_works(tmp_path, args, values):
    flags.FLAGS.unparse_flags()
    try:
        _, _, space = cli.resolve(flags.FLAGS(["bpfree", str(tmp_path / "exp"), *args]))
    finally:
        flags.FLAGS.unparse_flags()
    assert space.as_dict()["batchnorm"] == values


def test_trial_ids_keep_bn_for_batch_norm():
    """Existing records are keyed by these ids: batch norm stays `bn` in them."""
    point = {"algorithm": "dfa", "arch": "500-500", "activation": "tanh", "batchnorm": True, "bw_init": "ortho",
             "lr": 1e-3, "dropout": 0.0}
    assert trial_id(point).startswith("dfa-500-500-tanh-bn-bwortho-lr0.001-")


# ------------------------------------------------------------------------------- the coordinator's address
@pytest.mark.parametrize("address", ["300.1.1.1", "no-such-host.invalid", "192.0.2.1", "::1", ""])
def test_a_coordinator_address_that_cannot_be_bound_is_refused_before_any_process_starts(
        tmp_path, tiny_preset, cli_in_process, address):
    """Not an address (300.1.1.1), no such host, not one of this host's (TEST-NET-1), IPv6, empty."""
    proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--workers", "1", "--oracle_bind", address)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Invalid --oracle_bind '{address}'"), lines
    assert "this host cannot listen on it" in lines[0] and "127.0.0.1" in lines[0]
    assert not (tmp_path / "exp" / "distributed.json").exists()


def test_a_coordinator_started_by_hand_checks_its_address_too(tmp_path, tiny_preset, cli_in_process):
    proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), KERASTUNER_TUNER_ID="chief",
                          KERASTUNER_ORACLE_IP="192.0.2.1", KERASTUNER_ORACLE_PORT=str(free_port()))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[-1]]  # no warning: it never listens
    assert proc.stderr.startswith("error: Invalid KERASTUNER_ORACLE_IP '192.0.2.1'")


def test_a_worker_does_not_check_the_coordinators_address(tmp_path, tiny_preset, cli_in_process):
    """The same flags run on every host: --oracle_bind names the coordinator's host, not a worker's."""
    proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--oracle_bind", "192.0.2.1", "--seed=-1",
                          KERASTUNER_TUNER_ID="worker0", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT="1")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("error: Invalid seed -1"), proc.stderr


def test_a_coordinator_listening_beyond_loopback_says_so_in_one_line(tmp_path, tiny_preset, cli_in_process):
    with socket.socket() as taken:  # the port is taken: the coordinator warns, then cannot listen (exit 2)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--oracle_bind", "0.0.0.0",
                              KERASTUNER_TUNER_ID="chief", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port)
    assert proc.returncode == 2, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"0.0.0.0:{port}" in warnings[0] and "without authentication" in warnings[0]
    assert "SSH tunnel" in warnings[0]
    assert proc.stderr.splitlines()[-1].startswith(f"error: The coordinator cannot listen on 0.0.0.0:{port}")


def test_loopback_needs_no_warning_and_workers_reach_every_interface_through_loopback():
    assert distributed.bind_warning("127.0.0.1", 8000) is None and distributed.bind_warning("localhost", 1) is None
    assert "0.0.0.0:8000" in distributed.bind_warning("0.0.0.0", 8000)
    assert distributed.connect_address("0.0.0.0") == "127.0.0.1"
    assert distributed.connect_address("127.0.0.2") == "127.0.0.2"


# ---------------------------------------------------------------------- comparisons from the command line
# Issue 24: grid flags take lists, flags override the preset (the quickstart unless --hparams names another)
# and say so, and a search ends with its table.
QUICKSTART = os.path.join(ROOT, "hparams", "quickstart.toml")


def resolved(*args):
    flags.FLAGS.unparse_flags()
    try:
        return cli.resolve(flags.FLAGS(["bpfree", "exp", *map(str, args)]))
    finally:
        flags.FLAGS.unparse_flags()


@pytest.fixture
def spy_search(monkeypatch):
    """`run_search` replaced by a spy that trains nothing: [(config, space)] it was asked to run."""
    from bpfree.tuning import search

    calls = []

    def spy(experiment_dir, config, space, **kwargs):
        calls.append((config, space))
        return {"project_dir": experiment_dir, "ran": 0, "seconds": 0.0, "fit_seconds": 0.0, "unfinished": []}

    monkeypatch.setattr(search, "run_search", spy)
    return calls


@pytest.mark.parametrize("text,values", [
    ("bp", ["bp"]), ("bp,fa,dfa", ["bp", "fa", "dfa"]), (" bp , fa ", ["bp", "fa"]), ("1e-3,1e-2", ["1e-3", "1e-2"]),
    ("user_models:mlp(width=8,depth=2)", ["user_models:mlp(width=8,depth=2)"]),
    ("user_models:mlp(width=8,depth=2),500-500", ["user_models:mlp(width=8,depth=2)", "500-500"]),
    ("m:f(sizes=[8,16]),m:f(sizes=(1,2)),16", ["m:f(sizes=[8,16])", "m:f(sizes=(1,2))", "16"]),
])
def test_a_flag_list_splits_on_commas_outside_parentheses(text, values):
    from bpfree.tuning.space import split_values

    assert split_values(text) == values


@pytest.mark.parametrize("text", ["", "bp,", ",bp", "bp,,fa", "m:f(a=1),"])
def test_an_empty_value_in_a_list_is_refused_naming_the_list(text):
    from bpfree.tuning.space import SpaceError, split_values

    with pytest.raises(SpaceError, match=re.escape(f"Invalid list {text!r}: comma-separated values, none empty")):
        split_values(text)


def test_grid_flags_take_lists_that_replace_the_presets_values():
    _, config, space = resolved("--algorithm", "bp,fa,dfa", "--lr", "1e-3,1e-2", "--activation", "tanh,relu",
                                "--bw_init", "ortho,lecun", "--reg_rate", "0,0.2", "--batchnorm=false,true")
    values = space.as_dict()
    assert values["algorithm"] == ("bp", "fa", "dfa") and values["lr"] == (1e-3, 1e-2)
    assert values["activation"] == ("tanh", "relu") and values["bw_init"] == ("ortho", "lecun")
    assert values["dropout"] == (0.0, 0.2) and values["batchnorm"] == (False, True)
    assert values["arch"] == ("256-256",) and config.dataset == "mnist1d"  # the rest: the quickstart's
    assert space.size() == 3 * 2 * 2 * 2 * 2 * 2 == len(space.grid())
    assert {(p["algorithm"], p["lr"]) for p in space.grid()} == {(a, lr) for a in ("bp", "fa", "dfa")
                                                                  for lr in (1e-3, 1e-2)}


def test_a_single_value_is_fixed_and_named_in_the_project_as_before():
    _, config, space = resolved("--algorithm", "dfa", "--lr", "1e-3")
    assert space.project_name(config.dataset, config.problem_type, config.objective) == \
        "mnist1d-classification-val_error_rate-dfa-lr0.001"


def test_a_builder_arch_keeps_the_commas_inside_its_parentheses():
    _, _, space = resolved("--algorithm", "fa", "--arch", "user_models:mlp(width=8,depth=2),500-500")
    assert space.as_dict()["arch"] == ("user_models:mlp(depth=2,width=8)", "500-500")  # canonical builder spelling
    _, _, one = resolved("--arch", "user_models:mlp(width=8,depth=2)")
    assert one.as_dict()["arch"] == ("user_models:mlp(depth=2,width=8)",)


def test_a_rule_hparam_takes_a_list():
    _, _, space = resolved("--algorithm", "gait", "--arch", "64-64", "--rule_hparam", "gait.orthogonal_reg=0.1,1")
    assert dict(space.extras)["gait.orthogonal_reg"] == (0.1, 1.0)
    assert sorted({p["orthogonal_reg"] for p in space.grid()}) == [0.1, 1.0] and space.size() == 5 * 2


@pytest.mark.parametrize("args,line", [
    (["--lr", "1e-3,1e-3"], "error: Invalid lr list [0.001, 0.001]: 0.001 is listed twice."),
    (["--algorithm", "bp,fa,bp"], "error: Invalid algorithm list ['bp', 'fa', 'bp']: 'bp' is listed twice."),
    (["--bw_init", "ortho,orth"], "error: Unknown bw_init 'orth'; valid: ortho, lecun, uniform, gaussian, xavier."),
    (["--reg_rate", "0,1.5"], "error: Invalid dropout 1.5: a rate in [0, 1)."),
    (["--arch", "500,5x0"], "error: Invalid arch '5x0'"),
    (["--arch", "user_models:mlp(width=8,seed=1),500"], "error: Invalid arch 'user_models:mlp(width=8,seed=1)': seed "
                                                         "is set by the grid point"),
    (["--rule_hparam", "gait.orthogonal_reg=0.1,x"], "error: Invalid gait.orthogonal_reg 'x': a finite number"),
])
def test_a_bad_value_in_a_list_is_refused_in_one_line_before_anything_trains(tmp_path, cli_in_process, spy_search,
                                                                             args, line):
    done = cli_in_process(tmp_path / "exp", *args)
    assert done.returncode == 2 and not spy_search, done.stderr
    assert done.stderr.startswith(line) and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "exp").exists()


def test_flags_override_the_default_preset_and_say_which(tmp_path, cli_in_process, spy_search):
    """Issue 24: a flag once dropped the quickstart for the 6,912-point default grid on MNIST, silently."""
    done = cli_in_process(tmp_path / "exp", "--lr", "1e-3,1e-2", "--num_epochs", "5")
    assert done.returncode == 0, done.stderr
    ((config, space),) = spy_search
    values = space.as_dict()
    assert values["algorithm"] == ("bp", "fa", "dfa", "drtp") and values["arch"] == ("256-256",)  # the quickstart's
    assert values["lr"] == (1e-3, 1e-2) and space.size() == 8
    assert (config.dataset, config.num_epochs, config.executions_per_trial) == ("mnist1d", 5, 2)
    assert done.stdout.splitlines()[:3] == [
        "preset hparams/quickstart.toml (the default), with the command line's values:",
        "  --lr overrides the preset's lr [0.0003, 0.001, 0.003, 0.01, 0.03] with [0.001, 0.01]",
        "  --num_epochs overrides the preset's num_epochs 30 with 5"]


def test_flags_override_a_named_preset_and_say_which(tmp_path, cli_in_process, spy_search, tiny_preset):
    preset = tiny_preset(3)
    done = cli_in_process(tmp_path / "exp", "--hparams", preset, "--algorithm", "dfa,bp", "--batchnorm=false,true",
                          "--tracker", "bp_cosine")
    assert done.returncode == 0, done.stderr
    ((config, space),) = spy_search
    assert space.as_dict()["algorithm"] == ("dfa", "bp") and space.as_dict()["lr"] == (1e-3, 1e-2)  # the preset's lr
    assert config.dataset == "digits" and config.trackers == ("bp_cosine",)
    assert done.stdout.splitlines()[:3] == [
        f"preset {preset}, with the command line's values:",
        "  --algorithm overrides the preset's algorithm [bp, fa, dfa] with [dfa, bp]",
        "  --batchnorm overrides the preset's batchnorm [false] with [false, true]"]


def test_without_flags_the_default_preset_runs_and_nothing_is_said_to_override(tmp_path, cli_in_process,
                                                                               spy_search):
    from bpfree.tuning.presets import load_preset

    done = cli_in_process(tmp_path / "exp")
    assert done.returncode == 0 and "overrides" not in done.stdout, done.stdout
    ((config, space),) = spy_search
    search, preset = load_preset(QUICKSTART)
    assert space.as_dict() == {name: tuple(values) for name, values in preset.items()}
    assert config.num_epochs == search["num_epochs"] and config.dataset == search["dataset"]


def test_a_search_ends_with_its_results_table_and_curves(tmp_path, cli_in_process, tiny_preset):
    done = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "search done: 6 grid points" in out
    table = out[out.index("val_error_rate in %, lower is better"):]
    assert [line.split()[0] for line in table.splitlines()[2:5]] == sorted(["bp", "dfa", "fa"])  # a row per rule
    assert f"curves: {tmp_path / 'exp' / 'curves.png'}" in out
    assert (tmp_path / "exp" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second search in the same experiment (another project: fa at one lr) shows its own rows only
    again = cli_in_process(tmp_path / "exp", "--hparams", tiny_preset(1), "--algorithm", "fa", "--lr", "1e-2")
    assert again.returncode == 0, again.stderr[-3000:]
    table = again.stdout[again.stdout.index("val_error_rate in %, lower is better"):]
    assert [line.split()[0] for line in table.splitlines()[2:]][:2] == ["fa", "every"], table
    assert "project digits-classification-val_error_rate-fa-lr0.01" in " ".join(table.split())


def test_a_rule_hparam_flag_overrides_the_presets_rule_table_and_says_so():
    flags.FLAGS.unparse_flags()
    try:
        argv = flags.FLAGS(["bpfree", "exp", "--hparams", os.path.join(ROOT, "hparams", "gait_prop.toml"),
                            "--rule_hparam", "gait.orthogonal_init=false,true", "--rule_hparam", "tp.orthogonal_reg=0.1"])
        _, _, space = cli.resolve(argv)
        lines = cli.override_lines(space)
    finally:
        flags.FLAGS.unparse_flags()
    assert dict(space.extras)["gait.orthogonal_init"] == (False, True)
    assert lines == ["preset hparams/gait_prop.toml, with the command line's values:",  # tp's reg: not in the preset
                     "  --rule_hparam overrides the preset's gait.orthogonal_init [true] with [false, true]"]
