"""The tuning suite: search spaces, the hypermodel, the resumable grid oracle and tuner, the CLI.

Its names load on first use (PEP 562), so importing one light piece (`bpfree.tuning.cli` for --help, the
space, the config) does not pull in keras-tuner and TensorFlow with the hypermodel, oracle and tuner.
"""

import importlib

_EXPORTS = {
    "OBJECTIVES": "config", "SearchConfig": "config",
    "BpfreeHyperModel": "hypermodel",
    "EngineOptions": "options",
    "GridOracle": "oracle",
    "run_search": "search",
    "HPARAMS": "space", "SearchSpace": "space", "load_preset": "presets", "trial_id": "space",
    "GridTuner": "tuner",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bpfree.tuning.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
