"""bpfree: backpropagation-free learning rules in Keras 3, grid-searched against backpropagation.

    from bpfree import build_model
    model = build_model("dfa", "500-500", input_dim=784, output_dim=10)
    model.compile(optimizer="adam", metrics=["error_rate"])

Importing bpfree registers every class Keras must find to load a saved model (models, layers, the
`error_rate` metric, `UncorrectedAdam`, `TorchAdam`), so `keras.models.load_model` works in a fresh process;
except in `python -m bpfree.results`, the read side, which loads no model and never imports TensorFlow, and
in `python -m bpfree`, the search, which checks its input first and then calls `register_classes` itself.
"""

import importlib

from bpfree import console

console.quiet_import()  # TensorFlow's start-up noise off the console (first; TF_CPP_MIN_LOG_LEVEL=0 keeps it)


__version__ = "0.1.0"

# Submodules loaded on first use, so `import bpfree` stays light (datasets pulls in tfds).
_LAZY = ("datasets", "results", "records", "trackers", "tuning", "experiments", "layers", "models", "optimizers",
         "rules")
# The public classes and functions, by the module that defines them (loaded with it: PEP 562).
_PUBLIC = {"build_model": "models", "convert": "models", "Network": "models", "InvertibleNetwork": "models",
           "GLENetwork": "models", "ErrorRate": "metrics", "UncorrectedAdam": "optimizers", "TorchAdam": "optimizers",
           "parse_arch": "arch", "load_model": "results.models"}


def register_classes():
    """Imports the modules whose classes Keras must find to load a saved model (they register themselves)."""
    from bpfree import layers, metrics, models, optimizers, rules  # noqa: F401


if console.running_module() not in (console.READ_SIDE, console.SEARCH):  # those two load Keras late, or never
    register_classes()


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"bpfree.{_PUBLIC[name]}"), name)
    if name in _LAZY:
        return importlib.import_module(f"bpfree.{name}")
    raise AttributeError(f"module 'bpfree' has no attribute {name!r}")


__all__ = [*_PUBLIC, *_LAZY]
