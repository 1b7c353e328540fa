"""`python -m bpfree EXPERIMENT_DIR [flags]`: a resumable grid search (absl flags, as the ancestor).

Every hparam flag given (--algorithm, --arch, --activation, --batch_norm, --bw_init, --lr, --reg_rate)
is fixed; the others are searched over the preset's lists (--hparams, default hparams/default.toml).
Search settings come from the flag, else the preset's [search] table, else the defaults.
Exit codes: 0 done; 1 a flag that does not parse; 2 bad input (one line on stderr, nothing trained);
3 a crash (train.bash restarts the search, which resumes).
"""

import os
import sys
import traceback

from absl import app, flags

from bpfree import checks
from bpfree.arch import PROBLEM_TYPES

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

flags.DEFINE_string("hparams", None, "Search-space preset (TOML). Default: hparams/default.toml.")
flags.DEFINE_string("experiment_dir", None, "Where the experiment lives (or give it as the first argument).")
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool}
# Search settings: flag -> (type, help). Unset (None) means the preset's value, else SearchConfig's default.
SEARCH_FLAGS = {
    "dataset": (str, "Dataset name (see bpfree.datasets.names())."),
    "problem_type": (str, " | ".join(PROBLEM_TYPES) + "."),
    "objective": (str, "loss | val_loss | error_rate | val_error_rate (error, val_error)."),
    "scaler": (str, "standard | zero_one | identity."),
    "batch_size": (int, "Batch size."),
    "num_epochs": (int, "Epochs per execution."),
    "executions_per_trial": (int, "Executions (distinct seeds) per grid point."),
    "histogram_freq": (int, "Activation histograms every N epochs (0: off)."),
    "examples_frac": (float, "Stratified fraction of the training set (0: all)."),
    "validation_frac": (float, "Validation carved from train, stratified and fixed (default 0.1; 0, the test split, "
                               "only under --protocol ancestor)."),
    "protocol": (str, "holdout (default: choose on the carve-out, every execution tested at its end) | ancestor "
                      "(the ancestor's: validate on the test split, score the best epoch)."),
    "score": (str, "An execution's score: final (default; best under --protocol ancestor) | best | last<k> (the "
                   "mean of the last k epochs)."),
    "weight_decay": (float, "L2 on kernels."),
    "use_bias": (bool, "Dense layers with bias."),
    "use_xla": (bool, "Compile train steps with XLA (default: where a GPU is visible; --nouse_xla never)."),
    "use_early_stopping": (bool, "Stop an execution when the objective stops improving."),
    "early_stopping_patience": (int, "Epochs without improvement before stopping."),
    "seed": (int, "Base seed; execution k uses seed + k."),
    "optimizer": (str, "adam (default) | uncorrected_adam (the GAIT-prop seed's: beta_2 0.99, no bias "
                       "correction) | sgd."),
}
# Hparams: given = fixed. flag -> (hparam, type, help).
HPARAM_FLAGS = {
    "algorithm": ("algorithm", str, "Fix the learning rule."),
    "arch": ("arch", str, "Fix the arch: dense widths (500-1000-500) or convolutions first "
                          "(conv6k5-pool2-conv16k5-pool2-120-84; tokens conv<f>k<k>[s<s>], pool<n>, avgpool<n>, fc<n>)."),
    "activation": ("activation", str, "Fix the activation."),
    "batch_norm": ("batchnorm", bool, "Fix batch normalisation on/off."),
    "bw_init": ("bw_init", str, "Fix the feedback-matrix init."),
    "lr": ("lr", float, "Fix the learning rate."),
    "reg_rate": ("dropout", float, "Fix the dropout rate."),
}
for _name, (_kind, _help) in SEARCH_FLAGS.items():
    _DEFINE[_kind](_name, None, _help)
for _name, (_, _kind, _help) in HPARAM_FLAGS.items():
    _DEFINE[_kind](_name, None, _help)
flags.DEFINE_multi_string("tracker", None, "Tracker(s): bp_cosine, local_loss, weights, gradients, weight_alignment.")
flags.DEFINE_bool("reset_training", False, "Delete this experiment's records and start over.")
flags.DEFINE_integer("workers", 0, "Run the search as a coordinator and this many workers on this host "
                     "(keras-tuner chief/worker mode; see README for several hosts).")
flags.DEFINE_integer("group_size", None, "Executions trained side by side in one traced program (each its own "
                     "model, seed and optimizer); one program per structure (rule, arch, ...) serves all its learning "
                     "rates and seeds. 0: each execution through its own fit. Records are the same either way. "
                     "Default: bpfree.tuning.group.DEFAULT_GROUP_SIZE.")
flags.DEFINE_multi_string("rule_hparam", None, "Fix a rule's own hparam, RULE.NAME=VALUE (repeatable), e.g. "
                          "tp_rinv.gamma=0.01; a bare NAME=VALUE only for a name no other rule has.")


def resolve(argv):
    """(experiment_dir, SearchConfig, SearchSpace) from the flags; ValueError on bad input."""
    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.space import SearchSpace, load_preset

    positional = argv[1:]
    if len(positional) > 1:
        raise ValueError(f"Unexpected arguments {' '.join(positional[1:])!r}; usage: python -m bpfree EXPERIMENT_DIR [flags].")
    experiment_dir = FLAGS.experiment_dir or (positional[0] if positional else None)
    if not experiment_dir:
        raise ValueError("No experiment directory: python -m bpfree EXPERIMENT_DIR [flags].")
    preset = FLAGS.hparams or os.path.join(REPO, "hparams", "default.toml")
    search, space = load_preset(preset)
    overrides = {name: getattr(FLAGS, name) for name in SEARCH_FLAGS}
    if FLAGS.tracker:
        overrides["trackers"] = tuple(FLAGS.tracker)
    config = SearchConfig.from_settings(search, overrides, source=preset)  # preset values type-checked
    fixed = {hp: getattr(FLAGS, flag) for flag, (hp, _, _) in HPARAM_FLAGS.items()}
    for item in FLAGS.rule_hparam or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise checks.invalid("--rule_hparam", item, "expected RULE.NAME=VALUE, e.g. gait.orthogonal_reg=0.1")
        fixed[name.strip()] = value.strip()
    return experiment_dir, config, SearchSpace.create(space, fixed, tune_dropout=config.tunes_dropout)


def main(argv):
    from bpfree.tuning import distributed, group, validation
    from bpfree.tuning.lock import ExperimentLocked
    from bpfree.tuning.search import run_search

    _configure_tensorflow()
    try:
        validation.check_environment()  # KERASTUNER_TUNER_ID names a directory keras-tuner deletes
        experiment_dir, config, space = resolve(argv)
        checks.whole("--workers", FLAGS.workers, lambda v: v >= 0, "must be ≥ 0")
        group_size = group.DEFAULT_GROUP_SIZE if FLAGS.group_size is None else FLAGS.group_size
        checks.whole("--group_size", group_size, lambda v: v >= 0, "must be ≥ 0 (0: one execution at a time)")
        if FLAGS.workers and distributed.role() is None:
            validation.validate_points(space.grid(), config)  # bad input: exit 2 before any process starts
            return distributed.supervise(experiment_dir, sys.argv[1:], FLAGS.workers)
        summary = run_search(experiment_dir, config, space, reset_training=FLAGS.reset_training,
                             group_size=group_size)
    except (ValueError, ExperimentLocked) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception:  # a crash: train.bash restarts the search, which resumes where it stopped
        traceback.print_exc()
        return 3
    unfinished = summary.get("unfinished")
    if unfinished:  # accidents and interrupted executions: train.bash re-runs the search, which retries them
        kinds = sorted({status for _, _, status, _ in unfinished})
        first = next((f"{tid} execution {k}: {error.splitlines()[0][:200]}" for tid, k, _, error in unfinished
                      if error), f"{unfinished[0][0]} execution {unfinished[0][1]}")
        print(f"search incomplete: {len(unfinished)} execution(s) did not finish ({', '.join(kinds)}; first: "
              f"{first}); re-run the same command to retry them", file=sys.stderr)
        return 3
    overhead = summary["seconds"] - summary["fit_seconds"]
    print(f"search done: {summary['ran']} grid points run in {summary['seconds']:.0f} s "
          f"({overhead:.0f} s outside fit); records in {summary['project_dir']}\n"
          f"best per algorithm: python -m bpfree.results {summary['project_dir']} --by algorithm "
          f"--objective {config.objective}")
    return 0


def _configure_tensorflow():
    """GPU memory grows as needed (as the ancestor sets it), so several searches can share a GPU;
    a worker of a distributed search gets its share of the CPU threads."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    threads = int(os.environ.get("BPFREE_INTRA_OP_THREADS", 0))
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def run():
    app.run(lambda argv: sys.exit(main(argv)))
