"""The tuning suite: search spaces, the hypermodel, the resumable grid oracle and tuner, the CLI."""

from bpfree.tuning.config import OBJECTIVES, SearchConfig
from bpfree.tuning.hypermodel import BpfreeHyperModel
from bpfree.tuning.options import EngineOptions
from bpfree.tuning.oracle import GridOracle
from bpfree.tuning.search import run_search
from bpfree.tuning.space import HPARAMS, SearchSpace, load_preset, trial_id
from bpfree.tuning.tuner import GridTuner
