"""bpfree's command-line flags (absl): the search space's, the search settings', and how a search runs;
their grouped `--help` (`help_text`). Defining them loads nothing heavy: `--help` and bad input are
answered before Keras, TensorFlow or keras-tuner load (`bpfree.tuning.cli`)."""

import dataclasses
import os
import re
import textwrap

from absl import flags

from bpfree.arch import PROBLEM_TYPES
from bpfree.choices import ACTIVATIONS, BW_INITS, LR_SCHEDULES, OPTIMIZERS, RULES, TRACKERS
from bpfree.datasets import RESIZES, SCALERS, names as dataset_names
from bpfree.tuning import plan
from bpfree.tuning.config import OBJECTIVE_ALIASES, OBJECTIVES, SearchConfig
from bpfree.tuning.presets import load_preset
from bpfree.tuning.space import Values, split_values

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
USAGE = "python -m bpfree EXPERIMENT_DIR [flags]"
# The preset a search starts from unless --hparams names another (hparams/default.toml is the ancestor's full
# grid, 27,648 points: a base no command-line comparison wants; issue 24).
DEFAULT_PRESET = os.path.join(REPO, "hparams", "quickstart.toml")
# Bounds that keep a typo from exhausting memory before anything trains: a program holds its members'
# state at once (without XLA, every program has exactly --members of them), and TensorFlow's batch
# shapes are int32 (a batch larger than any dataset here is one batch of all of it).
MAX_MEMBERS = 1024
MAX_BATCH_SIZE = 2**24


def _one_of(names):
    return "; one of " + ", ".join(names) + "."


flags.DEFINE_string("hparams", None, "Search-space preset (TOML); hparams/*.toml are the shipped ones. "
                    "Default: hparams/quickstart.toml; every flag given overrides its value.")
flags.DEFINE_string("experiment_dir", None, "Where the experiment lives (or give it as the first argument).")
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool,
           list: flags.DEFINE_list}
# Search settings: flag -> (type, help). Unset (None) means the preset's value, else SearchConfig's default.
SEARCH_FLAGS = {
    "dataset": (str, "Dataset" + _one_of(dataset_names())),
    "problem_type": (str, "Problem" + _one_of(PROBLEM_TYPES)),
    "objective": (str, "Metric the search minimises" + _one_of(OBJECTIVES + tuple(OBJECTIVE_ALIASES))),
    "scaler": (str, "Input scaling" + _one_of(SCALERS)),
    "batch_size": (int, "Batch size."),
    "num_epochs": (int, "Epochs per execution."),
    "executions_per_trial": (int, "Executions (seeds seed, seed + 1, ...) per grid point."),
    "histogram_freq": (int, "Activation histograms every N epochs (0: off)."),
    "examples_frac": (float, "Stratified fraction of the training set (0: all)."),
    "validation_frac": (float, "Validation carved from train, stratified and fixed (default 0.1; 0, the test split, "
                               "only under --protocol ancestor)."),
    "protocol": (str, "holdout (default: choose on the carve-out, every execution tested at its end) | ancestor "
                      "(the ancestor's: validate on the test split, score the best epoch)."),
    "score": (str, "An execution's score: final (default; best under --protocol ancestor) | best | last<k> (the "
                   "mean of the last k epochs)."),
    "test_each_epoch": (bool, "Also evaluate the test split after every epoch (history test_*), to report the "
                              "test error at the epoch validation chose; it chooses nothing."),
    "weight_decay": (float, "L2 on kernels."),
    "use_bias": (bool, "Dense layers with bias."),
    "use_xla": (bool, "Compile train steps with XLA (default: where a GPU is visible; --nouse_xla never)."),
    "use_early_stopping": (bool, "Stop an execution when the objective stops improving."),
    "early_stopping_patience": (int, "Epochs without improvement before stopping."),
    "seed": (int, "Base seed; execution k uses seed + k."),
    "optimizer": (str, "Optimizer" + _one_of(OPTIMIZERS)[:-1] + " (torch_adam: PyTorch's, epsilon 1e-8 "
                       "after the bias correction; uncorrected_adam: the GAIT-prop seed's, beta_2 0.99, no bias "
                       "correction)."),
    # Training protocol (bpfree.schedules; README: Grid searches).
    "momentum": (float, "SGD's momentum μ in [0, 1) (v ← μv − ηg), with --optimizer sgd only."),
    "lr_schedule": (str, "Learning rate per epoch" + _one_of(LR_SCHEDULES)[:-1] + " (step: × lr_factor at each of "
                         "lr_milestones; cosine: over num_epochs; plateau: × lr_factor after lr_patience epochs "
                         "without a better val_loss)."),
    "lr_milestones": (list, "Epochs (from 0) where the step schedule multiplies the rate by lr_factor, e.g. 50,75."),
    "lr_factor": (float, "The step and plateau schedules' factor, in (0, 1)."),
    "lr_patience": (int, "The plateau schedule's epochs without improvement before a reduction."),
    # How trials are chosen (bpfree.tuning.searches; README: Grid searches).
    "search": (str, "How trials are chosen: grid (every point) | random (max_trials points in an order seeded by "
                    "--seed) | bayesian (keras-tuner's Bayesian optimisation over the grid, max_trials trials one at "
                    "a time) | hyperband (keras-tuner's Hyperband brackets over num_epochs, points from the seeded "
                    "order, at most max_trials; only the points trained to num_epochs are compared)."),
    "max_trials": (int, "The grid points a random, bayesian or hyperband search tries: required with them, refused "
                        "with grid; a larger value later extends the same sequence (not hyperband's)."),
    "hyperband_factor": (int, "Hyperband's reduction factor, an integer >= 2 (keras-tuner's default 3): each round "
                              "keeps the best 1/factor of its points and trains them factor x longer."),
    # Data shape (datasets.load's input_size / resize).
    "input_size": (int, "Images resized to N × N before scaling (0: the native size), e.g. 32 for MNIST as biotorch."),
    "resize": (str, "How images reach --input_size" + _one_of(RESIZES)[:-1] + " (pad: zeros around, symmetric; "
                    "never below the native size)."),
}
# Hparams: a flag given replaces the preset's values with its own: one, or a comma-separated list.
# flag -> (hparam, type, help). One name for each, as in presets and records; ALIASES keeps the ancestor's spelling.
HPARAM_FLAGS = {
    "algorithm": ("algorithm", str, "The learning rules, e.g. bp,fa,dfa" + _one_of(RULES)),
    "arch": ("arch", str, "The archs, e.g. 500-500,1000: dense widths (500-1000-500) or convolutions first "
                          "(conv6k5-pool2-conv16k5-pool2-120-84; tokens conv<f>k<k>[s<s>][v] (v: 'valid' "
                          "padding), pool<n>, avgpool<n>, fc<n>), or a model builder 'module:function(key=value,"
                          "...)' (commas inside its parentheses are its own)."),
    "activation": ("activation", str, "The activations, e.g. tanh,relu" + _one_of(ACTIVATIONS)),
    "batchnorm": ("batchnorm", bool, "Batch normalisation on (--batchnorm), off (--nobatchnorm) or both "
                                     "(--batchnorm=false,true)."),
    "bw_init": ("bw_init", str, "The feedback-matrix inits, e.g. ortho,lecun" + _one_of(BW_INITS)),
    "lr": ("lr", float, "The learning rates, e.g. 1e-3,1e-2."),
    "reg_rate": ("dropout", float, "The dropout rates, e.g. 0,0.2 (a preset's list is searched only for a val_* "
                                   "objective, a training objective gets 0; rates given here always are)."),
}
ALIASES = {"batch_norm": "batchnorm"}  # the ancestor's flag name, still accepted
for _name, (_kind, _help) in SEARCH_FLAGS.items():
    _DEFINE[_kind](_name, None, _help)


class _BooleansParser(flags.BooleanParser):
    """--batchnorm / --nobatchnorm as absl's booleans, and --batchnorm=false,true as `Values`; a value that
    is not a boolean is kept as text, for the space to refuse in one line (exit 2)."""

    def parse(self, argument):
        if isinstance(argument, str) and "," in argument:
            try:
                return Values([self._one(v) for v in split_values(argument)])
            except ValueError:  # an empty value: the list as text, refused by the space naming it
                return argument
        return self._one(argument)

    def _one(self, argument):
        try:
            return flags.BooleanParser.parse(self, argument)
        except ValueError:
            return argument


for _name, (_, _kind, _help) in HPARAM_FLAGS.items():
    if _kind is bool:
        flags.DEFINE_flag(flags.Flag(_BooleansParser(), None, _name, None, _help, boolean=True))
    else:  # text: `resolve` splits the list and converts each value
        flags.DEFINE_string(_name, None, _help)
for _alias, _name in ALIASES.items():
    flags.DEFINE_alias(_alias, _name)
flags.DEFINE_multi_string("tracker", None, "Tracker (repeatable)" + _one_of(TRACKERS))
flags.DEFINE_integer("members", 0, "The most executions of one structure (rule, arch, ... all but lr and seed) "
                     "trained in the same kernels by one program, its members (each its own weights, seed, data order "
                     "and optimizer state). 0: automatic (from the structure's size and the device). Under XLA records are "
                     "the same whatever the number; without XLA they depend on it, so an experiment keeps the count "
                     "its records were trained with (another is refused).")
flags.DEFINE_enum("engine", "members", ["members", "fit"], "members: the member programs (bpfree.tuning.engine); "
                  "fit: each execution through its own Keras fit (a debugging path, slower; same records within "
                  "the compile mode's rounding).")
flags.DEFINE_float("checkpoint_seconds", 30.0, "The most training time between two checkpoints of an execution "
                   "(0: every epoch). A killed search replays at most that much, bit for bit.")
flags.DEFINE_bool("save_models", False, "Keep each execution's final model (completed or diverged) as "
                  "records/<trial>/execution_<k>.keras beside its record, rewritten when a resumed or extended "
                  "execution ends; read back with bpfree.results.best_models. Disk: about as much again as the final "
                  "checkpoint each completed execution keeps (weights, feedback matrices, Adam's two slots a "
                  "weight): 1.0-1.3 MB an execution on the quickstart's 256-256 nets, 1.3-2.6 MB on LeNet-5.")
flags.DEFINE_integer("confirm_seeds", 0, "After the grid, re-run each rule's chosen configuration (best validation "
                     "score) with this many fresh seeds no grid execution used, as confirmation executions "
                     "(<project>-confirmation/, records marked confirmation): the report's paired tests run on their "
                     "test scores, which played no part in the selection. Resumable; more seeds add executions.")
flags.DEFINE_multi_string("rule_hparam", None, "A rule's own hparam, RULE.NAME=VALUE or a list RULE.NAME=V1,V2 "
                          "(repeatable), e.g. tp_rinv.gamma=0.01,0.1; a bare NAME=VALUE only for a name no other "
                          "rule has.")
flags.DEFINE_bool("reset_training", False, "Delete this experiment's records and start over.")
flags.DEFINE_integer("workers", 0, "Run the search as a coordinator and this many worker processes on this host "
                     "(keras-tuner chief/worker mode; README: several workers). On a GPU host worker k sees one GPU "
                     "alone, the (k mod n)-th of the n visible (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi "
                     "lists): --workers n runs one worker per GPU, more share them; the coordinator uses none. "
                     "Without a GPU each worker gets its share of the CPU cores. 0: one process, which trains "
                     "on the first visible GPU only.")
flags.DEFINE_string("oracle_bind", None, "Address the coordinator listens on: an IPv4 address (or name) of this "
                    "host, 0.0.0.0 for every interface; beyond loopback anyone who reaches the port can take and "
                    "report trials (no authentication; README: an SSH tunnel instead). Default: 127.0.0.1 with "
                    "--workers; a coordinator started by hand (KERASTUNER_TUNER_ID=chief) listens on "
                    "KERASTUNER_ORACLE_IP. Workers ignore it.")
flags.DEFINE_bool("dry_run", False, "Say what the search would do and train nothing: its size (points × executions × "
                  "epochs), its searched and fixed hparams, its first trial ids, its settings, what EXPERIMENT_DIR "
                  "already holds, and a wall time estimated from a short run of the same search in a temporary "
                  "directory. Writes nothing to EXPERIMENT_DIR; exit 0 (2 where the search would refuse).")
flags.DEFINE_bool("yes", False, f"Run a grid of more than {plan.ASK_ABOVE:,} execution-epochs (points × executions × "
                  "epochs), which is refused without it (exit 2, nothing trained).")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's start-up messages and absl/TensorFlow warnings "
                  "(TF_CPP_MIN_LOG_LEVEL=0 does too).")

HELP_GROUPS = (
    ("search space (a flag given replaces the preset's values with its value or comma-separated list; the "
     "others are searched over the preset)",
     ("hparams", *HPARAM_FLAGS, "rule_hparam")),
    ("search settings (the flag, else the preset's [search] table, else the default shown)",
     (*SEARCH_FLAGS, "tracker")),
    ("running", ("experiment_dir", "dry_run", "yes", "reset_training", "save_models", "confirm_seeds", "workers",
                 "oracle_bind", "verbose")),
)


def help_text(width=100):
    """bpfree's own flags, grouped, with their defaults and choices (absl's --helpfull lists all ~120)."""
    defaults = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
    preset = os.path.relpath(DEFAULT_PRESET, REPO)
    preset_defaults, preset_space = load_preset(DEFAULT_PRESET)
    lines = [f"usage: {USAGE}", "       ./train.bash EXPERIMENT_DIR [flags]   (the same, restarted after a crash)", "",
             textwrap.fill("A resumable grid search: records, checkpoints and TensorBoard logs go to EXPERIMENT_DIR; "
                           "re-running the same command resumes it. Exit codes: 0 done, 2 bad input (one line, "
                           "nothing trained), 3 crashed or incomplete (re-run to resume).", width)]
    for title, names in HELP_GROUPS:
        lines += ["", *textwrap.wrap(f"{title}:", width)]
        for name in names:
            flag = FLAGS[name]
            spelled = f"--[no]{name}" if flag.boolean else f"--{name}"
            for alias in (a for a, n in ALIASES.items() if n == name):
                spelled += f" (or --[no]{alias})" if flag.boolean else f" (or --{alias})"
            if name in preset_defaults:
                shown = f"default: {shown_value(preset_defaults[name])} from {preset}"
            elif name in defaults:
                shown = f"default: {shown_value(defaults[name])}"
            elif name in HPARAM_FLAGS and HPARAM_FLAGS[name][0] in preset_space:
                shown = f"default: {shown_value(preset_space[HPARAM_FLAGS[name][0]])} from {preset}"
            else:
                shown = "" if flag.default in (None, []) else f"default: {shown_value(flag.default)}"
            text = re.sub(r";\s*repeat this option to specify a list of values$", "", flag.help)
            lines.append(f"  {spelled}")
            lines += textwrap.wrap(f"{text} ({shown})" if shown else text, width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
    lines += ["", "--helpfull lists every flag, absl's and TensorFlow's included."]
    return "\n".join(lines)


def shown_value(value):
    """A flag's value as `--help` and the override lines show it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ", ".join(map(shown_value, value)) or "none"
    return str(value)
