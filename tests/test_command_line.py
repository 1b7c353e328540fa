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
