"""Quiet command lines: TensorFlow's start-up chatter kept off the console of `python -m bpfree...`.

Every start of TensorFlow prints lines that tell a bpfree user nothing: absl's "All log messages before
absl::InitializeLog() ..." banner, "Could not find cuda drivers", "failed call to cuInit" on a host without
a GPU, CPU-feature and oneDNN notices, XLA banners, absl warnings from tfds. For bpfree's command lines
(`python -m bpfree`, `python -m bpfree.experiments.*`, `python -m bpfree.results`), before TensorFlow loads:

- TF_CPP_MIN_LOG_LEVEL defaults to 2 (TensorFlow's C++ warnings and errors only; a value you set is kept);
- TensorFlow is imported and its GPUs listed with stderr passed through a filter that drops those known
  lines (the ones logged before absl is initialised ignore TF_CPP_MIN_LOG_LEVEL) and keeps every other
  line, in order, even if the import aborts;
- absl's and TensorFlow's Python loggers show errors only.

The search (`python -m bpfree`) imports TensorFlow only once its flags are checked, so its `--help` and a
refused flag answer without it: it loads it within `quiet_start` itself; the other command lines get it at once.
`--verbose` (a flag of the search and the experiments), or TF_CPP_MIN_LOG_LEVEL=0, leaves all of it alone.

Importing bpfree as a library (the Python API, a notebook) imports TensorFlow at once (`register_classes`),
so, unless TensorFlow is loaded already or TF_CPP_MIN_LOG_LEVEL is 0, it defaults TF_CPP_MIN_LOG_LEVEL to 2
and imports TensorFlow and lists its GPUs through the same filter (`quiet_library`). The Python loggers are
left as they are: TensorFlow's and Keras's warnings (retracing, ...) reach a library user as without
bpfree. TF_CPP_MIN_LOG_LEVEL=0 before the import shows every start-up line.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys

LOG_LEVEL = "2"  # TF_CPP_MIN_LOG_LEVEL unless set: warnings and errors
SEVERITIES = "IWEF"  # a C++ log line's first letter; TF_CPP_MIN_LOG_LEVEL n hides the first n
LOG_LINE = r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] "  # absl's C++ format: I0000 00:00:17.5 123 file.cc:31] ...
# Lines that are noise whatever their severity (the cuInit and registration errors are errors, but say
# only that this host has no usable GPU, or that a library was linked twice).
KNOWN_NOISE = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    LOG_LINE + r"failed call to cuInit",
    LOG_LINE + r"Unable to register cu(DNN|FFT|BLAS) factory",
    LOG_LINE + r"computation placer already registered",
    LOG_LINE + r"TF-TRT Warning: Could not find TensorRT",
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$",
)
NO_GPU_NOTE = ("note: TensorFlow could not initialise this host's NVIDIA GPU (cuInit failed); training runs on "
               "the CPU (--verbose shows TensorFlow's messages).")
LIBRARY_NO_GPU_NOTE = NO_GPU_NOTE.replace("--verbose", "TF_CPP_MIN_LOG_LEVEL=0 before importing bpfree")


READ_SIDE = "bpfree.results"  # reads records, loads no model: never imports TensorFlow
SEARCH = "bpfree"  # the search CLI: imports TensorFlow (and bpfree's Keras side) once its input is checked


def running_module(argv=None, orig_argv=None):
    """The module this process runs as `python [options] -m MODULE ...` while Python is still locating it
    (it sets sys.argv[0] to "-m" meanwhile, so this holds while `bpfree/__init__` runs); None otherwise."""
    argv = list(sys.argv if argv is None else argv)
    orig_argv = list(sys.orig_argv if orig_argv is None else orig_argv)
    if not argv or argv[0] != "-m" or len(orig_argv) < len(argv) + 1:
        return None
    return orig_argv[len(orig_argv) - len(argv)].removeprefix("-m")


def command_line(argv=None, orig_argv=None):
    """The arguments after the module when this process runs `python [options] -m bpfree[.x] ...` (see
    `running_module`); None otherwise."""
    module = running_module(argv, orig_argv)
    if module is None or not (module == "bpfree" or module.startswith("bpfree.")):
        return None
    return list(sys.argv if argv is None else argv)[1:]


def wants_verbose(args, environ=None):
    """True if `args` turn --verbose on (absl's spellings; the last wins; none after "--"), or
    TF_CPP_MIN_LOG_LEVEL is 0 (TensorFlow's own "show everything")."""
    environ = os.environ if environ is None else environ
    verbose = environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        if name == "verbose":
            verbose = not sep or value.lower() in ("true", "t", "1", "yes", "y")
        elif name == "noverbose" and not sep:
            verbose = False
    return verbose


def quiet_command_line():
    """Called by `bpfree/__init__.py` before TensorFlow loads: quiet start-up for bpfree's command lines
    (module docstring); nothing for a library import, --verbose or TF_CPP_MIN_LOG_LEVEL=0."""
    args = command_line()
    if args is None or running_module() == READ_SIDE or "tensorflow" in sys.modules or wants_verbose(args):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL)
    if running_module() != SEARCH:  # the search loads it later, within `quiet_start`
        load_tensorflow()


def quiet_import():
    """Called first by `bpfree/__init__.py`: `quiet_command_line` for `python -m bpfree...`, `quiet_library`
    for any other import (the Python API, a notebook, a user's script)."""
    if command_line() is None:
        quiet_library()
    else:
        quiet_command_line()


def quiet_library(environ=None):
    """A library import of bpfree (which imports TensorFlow anyway): TensorFlow imported now, its C++ start-up
    lines through the filter of known noise, TF_CPP_MIN_LOG_LEVEL 2 unless set; nothing if TensorFlow is
    loaded already or TF_CPP_MIN_LOG_LEVEL is 0. Python's loggers are left alone."""
    environ = os.environ if environ is None else environ
    if "tensorflow" in sys.modules or wants_verbose([], environ):
        return
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL)
    with filtered_stderr(note=LIBRARY_NO_GPU_NOTE):
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # cuInit now, inside the filter, not at the first op


def load_tensorflow():
    """Imports TensorFlow with its start-up noise off stderr (`quiet_start`) and lists its GPUs."""
    with quiet_start():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # cuInit, and its failure on a host without a GPU


@contextlib.contextmanager
def quiet_start(quiet=True):
    """A block that may import TensorFlow (the search's, once its flags are checked): if `quiet` and
    TensorFlow is not loaded yet, stderr passes the filter of known noise (`filtered_stderr`) meanwhile,
    and absl's and TensorFlow's Python loggers show errors only if it loaded. Otherwise nothing."""
    if not quiet or "tensorflow" in sys.modules:
        yield
        return
    with filtered_stderr():
        yield
    if "tensorflow" in sys.modules:
        import logging

        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def filtered_stderr(note=NO_GPU_NOTE):
    """Within it, what this process writes to file descriptor 2 (C++ libraries included) goes through
    the filter of known noise (`drops`); the rest reaches the console unchanged, as it comes. `note` ends
    it if a cuInit failure was dropped on a host with an NVIDIA driver."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL))
    except ValueError:
        level = int(LOG_LEVEL)
    hidden_gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1")
    note = note if os.path.exists("/proc/driver/nvidia") and not hidden_gpus else ""
    sys.stderr.flush()
    try:  # the filter is this file run as a script in a child process (no site, no bpfree import), so
        # that what TensorFlow prints just before aborting its import still reaches the console
        child = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__), str(level), note],
                                 stdin=subprocess.PIPE, stdout=2, start_new_session=True)
    except OSError:  # no filter: the console gets everything, as without bpfree
        yield
        return
    saved = os.dup(2)
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        child.stdin.close()
        child.wait()


def drops(line, level=int(LOG_LEVEL)):
    """True if the filter drops `line` at TF_CPP_MIN_LOG_LEVEL `level`: a C++ log line of a lower severity
    (those logged before absl is initialised escape TensorFlow's own filter), or known noise."""
    severity = re.match(LOG_LINE, line)
    below = bool(severity) and SEVERITIES.index(severity.group(1)) < level
    return below or any(re.search(pattern, line) for pattern in KNOWN_NOISE)


def _forward(level, note):
    """The filter process: stdin's lines that `drops` keeps go to stdout (the console's stderr), each as
    it comes; `note` ends them if a cuInit failure was dropped. Signals meant for the command are ignored:
    it ends when the command closes the pipe, or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out, gpu_failed = sys.stdout.buffer, False
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if drops(line, level):
            gpu_failed = gpu_failed or "cuInit" in line
            continue
        out.write(raw)
        out.flush()
    if gpu_failed and note:
        out.write(f"{note}\n".encode())
        out.flush()


if __name__ == "__main__":
    _forward(int(sys.argv[1]), sys.argv[2])
