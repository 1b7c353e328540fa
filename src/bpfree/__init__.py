"""bpfree: backpropagation-free learning rules in Keras 3, grid-searched against backpropagation.

    from bpfree import build_model
    model = build_model("dfa", "500-500", input_dim=784, output_dim=10)
    model.compile(optimizer="adam", metrics=["error_rate"])

Importing bpfree registers every class Keras must find to load a saved model (models, layers, the
`error_rate` metric, `UncorrectedAdam`, `TorchAdam`), so `keras.models.load_model` works in a fresh process; except
in `python -m bpfree.results`, the read side, which loads no model and never imports TensorFlow.
"""

import importlib

from bpfree import console

console.quiet_command_line()  # `python -m bpfree...`: TensorFlow's start-up noise off the console (first)


__version__ = "0.1.0"

# Submodules loaded on first use, so `import bpfree` stays light (datasets pulls in tfds).
_LAZY = ("datasets", "results", "records", "trackers", "tuning", "experiments")
if console.running_module() != console.READ_SIDE:  # the read side loads no model: no TensorFlow
    from bpfree import layers, models, optimizers, rules  # noqa: F401 - registers every saveable class
    from bpfree.arch import parse_arch
    from bpfree.metrics import ErrorRate
    from bpfree.models import GLENetwork, InvertibleNetwork, Network, build_model
    from bpfree.optimizers import TorchAdam, UncorrectedAdam


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"bpfree.{name}")
    raise AttributeError(f"module 'bpfree' has no attribute {name!r}")


__all__ = ["build_model", "Network", "InvertibleNetwork", "GLENetwork", "ErrorRate", "UncorrectedAdam",
           "TorchAdam", "parse_arch", "layers", "models", "optimizers", "rules", *_LAZY]
