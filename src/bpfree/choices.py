"""The names a command line and a search configuration are checked against, without importing Keras.

The modules that implement them (`bpfree.rules`, `bpfree.layers`, `bpfree.optimizers`, `bpfree.schedules`,
`bpfree.trackers`) load TensorFlow; `python -m bpfree --help` and a refused flag must not wait for it.
The implementing modules keep their own names (or read them from here); tests/test_startup.py checks
that both agree, so a new rule, activation or optimizer fails a test until it is listed here too.
"""

from bpfree import checks

# Every rule in `bpfree.rules.registry.names()`, in registration order.
RULES = ("bp", "fa", "dfa", "drtp", "cce", "mse", "gait", "tp", "bp_inv", "dtp", "tp_lsq", "tp_rinv", "gle", "le",
         "kp", "usf", "brsf", "frsf", "sdfa", "pepita", "ff")
ACTIVATIONS = ("tanh", "relu", "lrelu", "swish", "sigmoid", "linear")  # bpfree.layers.block's hidden activations
BW_INITS = ("ortho", "lecun", "uniform", "gaussian", "xavier")  # bpfree.layers.feedback's feedback-matrix inits
OPTIMIZERS = ("adam", "torch_adam", "uncorrected_adam", "sgd")  # bpfree.optimizers.get
LR_SCHEDULES = ("constant", "step", "cosine", "plateau")  # bpfree.schedules
TRACKERS = ("bp_cosine", "local_loss", "weights", "gradients", "weight_alignment")  # bpfree.trackers


def check_trackers(trackers):
    """Raises a one-line ValueError unless `trackers` is a sequence of TRACKERS names."""
    if isinstance(trackers, str):
        raise ValueError(f"trackers must be a sequence of names, got the string {trackers!r}.")
    for name in trackers:
        checks.choice("tracker", name, TRACKERS)

# How a search chooses its trials (`bpfree.tuning.oracles`): every grid point; a seeded sample of max_trials of
# them; or keras-tuner's Bayesian optimisation over the grid, one trial at a time.
SEARCHES = ("grid", "random", "bayesian")
# keras-tuner's other search, and why it is not offered (refused in one line).
NOT_OFFERED = {"hyperband": "keras-tuner's Hyperband trains a trial for a bracket's epoch budget and resumes it in a "
                            "later round, which this search's records and resume (one record per execution, its "
                            "epochs fixed by num_epochs) cannot yet hold with the same guarantees; use random or "
                            "bayesian"}


def check_search(search, max_trials):
    """Raises a one-line ValueError unless `search` is offered and `max_trials` fits it: None with grid (the
    grid runs every point), an integer ≥ 1 otherwise."""
    if search in NOT_OFFERED:
        raise ValueError(f"search {search!r} is not offered: {NOT_OFFERED[search]}.")
    checks.choice("search", search, SEARCHES)
    if search == "grid":
        if max_trials is not None:
            raise checks.invalid("max_trials", max_trials, "only with search random or bayesian (the grid runs every "
                                 "point; fix hparams to run fewer)")
    elif max_trials is None:
        raise ValueError(f"search {search!r} needs max_trials (--max_trials N, or max_trials in the preset's "
                         "[search] table): the number of grid points it tries.")
    else:
        checks.whole("max_trials", max_trials, lambda v: v >= 1, f"an integer ≥ 1 (the grid points search {search} "
                     "tries)")
