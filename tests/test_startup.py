"""Start-up cost (issue 22): `python -m bpfree --help` and refused input answer without importing TensorFlow,
Keras or keras-tuner, and the light lists the flags are checked against agree with the modules behind them."""

import os
import re
import subprocess
import sys

import pytest

from bpfree import choices, layers, optimizers, rules, schedules, trackers
from fresh_process import fresh_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "keras", "keras_tuner", "tensorflow_datasets", "pandas", "matplotlib", "scipy")


def run_cli(*args):
    """`python -X importtime -m bpfree ARGS` in a fresh process: (exit code, stderr without the import
    lines, the heavy packages it imported)."""
    env = fresh_env()
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


# ------------------------------------------------------------------------------ the Python API (issue 24)
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|rebuild TensorFlow with the appropriate compiler flags")


def python_c(code, **env):
    """`python -c CODE` in a fresh process, under a user's environment (no TF_CPP_MIN_LOG_LEVEL unless given)."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    base.update(PYTHONPATH=os.path.join(ROOT, "src"), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=300)


def test_importing_bpfree_keeps_tensorflows_start_up_lines_off_stderr():
    """`import bpfree` (the Python API, a notebook) imports TensorFlow through the filter of known noise: no
    I0000 / W0000 notices, no cuInit E0000 on a host without a GPU. TF_CPP_MIN_LOG_LEVEL=0 brings them back."""
    code = ("import bpfree, tensorflow as tf, os\n"
            "tf.config.list_physical_devices('GPU'); tf.constant(1.0) + 1\n"
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    quiet = python_c(code)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert [line for line in quiet.stderr.splitlines() if CPP_LOG_LINE.search(line)] == [], quiet.stderr[-3000:]
    assert quiet.stdout.split() == ["2"]  # the default it set; a value the user set is kept (below)
    verbose = python_c(code, TF_CPP_MIN_LOG_LEVEL="0")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert verbose.stdout.split() == ["0"]
    if not any(CPP_LOG_LINE.search(line) for line in verbose.stderr.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines here: nothing to keep off")


def test_a_users_log_level_and_an_earlier_tensorflow_import_are_left_alone():
    done = python_c("import os, sys\n"
                    "import bpfree\n"
                    "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", TF_CPP_MIN_LOG_LEVEL="3")
    assert done.returncode == 0 and done.stdout.split() == ["3"], done.stderr[-3000:]
    done = python_c("import os, tensorflow\n"
                    "import bpfree\n"
                    "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL', 'unset'))")
    assert done.returncode == 0 and done.stdout.split() == ["unset"], done.stderr[-3000:]


def notebook_cell_stderr(code, level=None):
    """What a notebook cell running `code` shows on its stderr: a fresh Jupyter kernel, which forwards the C++
    libraries' file descriptor 2 into the cell's output (unless it runs under pytest, hence the environment)."""
    import nbformat
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTEST_CURRENT_TEST")}
    env["PYTHONPATH"] = os.path.join(ROOT, "src")
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute(env=env)
    return "".join(o.get("text", "") for o in notebook.cells[0].outputs if o.get("name") == "stderr")


def test_a_notebook_importing_bpfree_shows_no_tensorflow_start_up_lines():
    code = "import bpfree, tensorflow as tf\ntf.config.list_physical_devices('GPU'); tf.constant(1.0) + 1"
    quiet = notebook_cell_stderr(code)
    assert [line for line in quiet.splitlines() if CPP_LOG_LINE.search(line)] == [], quiet
    verbose = notebook_cell_stderr(code, level="0")
    if not any(CPP_LOG_LINE.search(line) for line in verbose.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines here: nothing to keep off")
