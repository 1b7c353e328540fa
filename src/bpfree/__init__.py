"""bpfree: backpropagation-free learning rules in Keras 3, grid-searched against backpropagation.

    from bpfree import build_model
    model = build_model("dfa", "500-500", input_dim=784, output_dim=10)
    model.compile(optimizer="adam", metrics=["error_rate"])
"""

import importlib

from bpfree import rules
from bpfree.metrics import ErrorRate
from bpfree.models.feedforward import Network, build_model, parse_arch

__version__ = "0.1.0"

# Submodules loaded on first use, so `import bpfree` stays light (datasets pulls in tfds).
_LAZY = ("datasets", "results", "records", "trackers", "tuning", "layers", "experiments")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"bpfree.{name}")
    raise AttributeError(f"module 'bpfree' has no attribute {name!r}")


__all__ = ["build_model", "Network", "ErrorRate", "parse_arch", "rules", *_LAZY]
