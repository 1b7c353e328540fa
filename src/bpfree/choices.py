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
