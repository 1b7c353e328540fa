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

# How a search chooses its trials (`bpfree.tuning.searches`): every grid point; a seeded sample of max_trials of
# them; keras-tuner's Bayesian optimisation over the grid, one trial at a time; or keras-tuner's Hyperband schedule
# over at most max_trials grid points (`bpfree.tuning.hyperband`).
SEARCHES = ("grid", "random", "bayesian", "hyperband")
DEFAULT_HYPERBAND_FACTOR = 3  # keras-tuner's


def check_search(search, max_trials, hyperband_factor=DEFAULT_HYPERBAND_FACTOR):
    """Raises a one-line ValueError unless `search` is offered and `max_trials` fits it: None with grid (the
    grid runs every point), an integer ≥ 1 otherwise; `hyperband_factor` an integer ≥ 2, set only with
    search hyperband."""
    checks.choice("search", search, SEARCHES)
    if search == "grid":
        if max_trials is not None:
            raise checks.invalid("max_trials", max_trials, "only with search random, bayesian or hyperband (the grid "
                                 "runs every point; fix hparams to run fewer)")
    elif max_trials is None:
        raise ValueError(f"search {search!r} needs max_trials (--max_trials N, or max_trials in the preset's "
                         "[search] table): the number of grid points it tries.")
    else:
        checks.whole("max_trials", max_trials, lambda v: v >= 1, f"an integer ≥ 1 (the grid points search {search} "
                     "tries)")
    if search == "hyperband":
        checks.whole("hyperband_factor", hyperband_factor, lambda v: v >= 2, "an integer ≥ 2 (keras-tuner's "
                     "factor: each round keeps 1/factor of its points and trains them factor × longer)")
    elif hyperband_factor != DEFAULT_HYPERBAND_FACTOR:
        raise checks.invalid("hyperband_factor", hyperband_factor, f"{DEFAULT_HYPERBAND_FACTOR} (the default) unless "
                             "search is hyperband")
