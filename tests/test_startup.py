"""Start-up cost (issue 22): `python -m bpfree --help` and refused input answer without importing TensorFlow,
Keras or keras-tuner, and the light lists the flags are checked against agree with the modules behind them."""

import os
import subprocess
import sys

import pytest

from bpfree import choices, layers, optimizers, rules, schedules, trackers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "keras", "keras_tuner", "tensorflow_datasets", "pandas", "matplotlib", "scipy")


def run_cli(*args):
    """`python -X importtime -m bpfree ARGS` in a fresh process: (exit code, stderr without the import
    lines, the heavy packages it imported)."""
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bpfree", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    messages = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
    return done.returncode, messages, sorted(set(HEAVY) & imported)


def test_help_imports_no_tensorflow():
    code, messages, heavy = run_cli("--help")
    assert code == 0, messages
    assert heavy == [], f"--help imported {heavy}"


@pytest.mark.parametrize("flag, message", [
    ("--num_epochs=-1", "error: Invalid num_epochs -1: must be ≥ 1."),
    ("--algorithm=nope", "error: Unknown algorithm 'nope'; valid: bp, fa,"),
    ("--optimizer=nope", "error: Unknown optimizer 'nope'; valid: adam,"),
    # lists (issue 24): the bad value named, whichever its place, before any rule loads Keras
    ("--algorithm=bp,nope", "error: Unknown algorithm 'nope'; valid: bp, fa,"),
    ("--lr=1e-3,abc", "error: Invalid lr 'abc': a positive number."),
    ("--activation=relu,tahn", "error: Unknown activation 'tahn'; valid: tanh, relu,"),
    ("--batchnorm=false,maybe", "error: Invalid batchnorm 'maybe': true or false."),
    ("--algorithm=bp,,fa", "error: Invalid list 'bp,,fa': comma-separated values, none empty"),
])
def test_bad_input_is_refused_before_tensorflow_loads(tmp_path, flag, message):
    experiment = tmp_path / "exp"
    code, messages, heavy = run_cli(experiment, flag)
    assert code == 2 and messages.startswith(message), messages
    assert heavy == [], f"refusing {flag} imported {heavy}"
    assert not experiment.exists()  # refused before the search opened anything


def test_light_names_agree_with_the_modules_that_implement_them():
    """A new rule, activation, optimizer, ... must be listed in bpfree.choices too (the CLI checks against it)."""
    assert choices.RULES == rules.names()
    assert choices.ACTIVATIONS == layers.ACTIVATIONS
    assert choices.BW_INITS == layers.BW_INITS
    assert choices.OPTIMIZERS == optimizers.NAMES
    assert choices.LR_SCHEDULES == schedules.NAMES
    assert choices.TRACKERS == trackers.TRACKERS
