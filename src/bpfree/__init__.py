"""bpfree: backpropagation-free learning rules in Keras 3, grid-searched against backpropagation.

    from bpfree import build_model
    model = build_model("dfa", "500-500", input_dim=784, output_dim=10)
    model.compile(optimizer="adam", metrics=["error_rate"])

Importing bpfree registers every class Keras must find to load a saved model (models, layers, the
`error_rate` metric, `UncorrectedAdam`), so `keras.models.load_model` works in a fresh process; except
in `python -m bpfree.results`, the read side, which loads no model and never imports TensorFlow.
"""

import importlib
import sys

__version__ = "0.1.0"

# Submodules loaded on first use, so `import bpfree` stays light (datasets pulls in tfds).
_LAZY = ("datasets", "results", "records", "trackers", "tuning", "experiments")
_READ_SIDE = "bpfree.results"  # `python -m bpfree.results`: reads records, loads no model (DESIGN.md)


def _starting_the_read_side():
    """Whether this process is `python -m bpfree.results …`: Python imports this package before it runs the
    module, and the read side must not pay for (or need) TensorFlow, so nothing is registered then."""
    args = list(getattr(sys, "orig_argv", ())[1:])
    while args:  # the interpreter's options, as it parses them: "-I -m x", "-Im x", "-mx", "-W ignore -m x"
        arg = args.pop(0)
        if arg == "--check-hash-based-pycs":
            args = args[1:]
        elif not arg.startswith("-") or arg == "-" or arg.startswith("--"):
            return False  # a script, stdin, or a long option: no -m
        for k, flag in enumerate(arg[1:], start=2):
            if flag in "mWX":
                value = arg[k:] or (args.pop(0) if args else "")
                if flag == "m":
                    return value == _READ_SIDE
                break
            if flag == "c":
                return False
    return False


if not _starting_the_read_side():
    from bpfree import layers, models, optimizers, rules  # noqa: F401 - registers every saveable class
    from bpfree.arch import parse_arch
    from bpfree.metrics import ErrorRate
    from bpfree.models import GLENetwork, InvertibleNetwork, Network, build_model
    from bpfree.optimizers import UncorrectedAdam


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"bpfree.{name}")
    raise AttributeError(f"module 'bpfree' has no attribute {name!r}")


__all__ = ["build_model", "Network", "InvertibleNetwork", "GLENetwork", "ErrorRate", "UncorrectedAdam",
           "parse_arch", "layers", "models", "optimizers", "rules", *_LAZY]
