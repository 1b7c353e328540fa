"""`python -m bpfree EXPERIMENT_DIR [flags]`: a resumable grid search (absl flags, as the ancestor).

The preset (--hparams, default hparams/quickstart.toml) is the base; every flag given overrides its value,
and the command says which. An hparam flag (--algorithm, --arch, --activation, --batchnorm, --bw_init, --lr,
--reg_rate, --rule_hparam) takes one value or a comma-separated list (--algorithm bp,fa,dfa --lr 1e-3,1e-2),
which replaces the preset's list. Search settings come from the flag, else the preset's [search] table,
else the defaults. A finished search prints its best configuration per rule and writes
EXPERIMENT_DIR/curves.png.
A grid of more than `bpfree.tuning.plan.ASK_ABOVE` execution-epochs runs only with --yes; --dry_run
says what a search would do (size, points, an estimated time) and trains nothing.
Exit codes: 0 done; 1 a flag that does not parse; 2 bad input (one line on stderr, nothing trained; a grid
too large without --yes); 3 a crash (train.bash restarts the search, which resumes).
"""

import os
import sys
import traceback

from absl import app, flags

# Only what --help and checking the flags need: no Keras, TensorFlow or keras-tuner, which `main` loads
# (`_load_search_modules`) once the input is known to be good.
from bpfree import checks, console
from bpfree.tuning import distributed, plan
from bpfree.tuning.config import SearchConfig
from bpfree.tuning.lock import ExperimentLocked
from bpfree.tuning.command_flags import (DEFAULT_PRESET, HPARAM_FLAGS, MAX_BATCH_SIZE, MAX_MEMBERS, SEARCH_FLAGS,
                                        REPO, USAGE, help_text, shown_value)
from bpfree.tuning.presets import load_preset
from bpfree.tuning.space import SearchSpace, Values, rule_entries, split_values

FLAGS = flags.FLAGS


def resolve(argv):
    """(experiment_dir, SearchConfig, SearchSpace) from the flags; ValueError on bad input."""
    positional = argv[1:]
    if len(positional) > 1:
        raise ValueError(f"Unexpected arguments {' '.join(positional[1:])!r}; usage: python -m bpfree EXPERIMENT_DIR [flags].")
    experiment_dir = FLAGS.experiment_dir or (positional[0] if positional else None)
    if not experiment_dir:
        raise ValueError("No experiment directory: python -m bpfree EXPERIMENT_DIR [flags].")
    preset = FLAGS.hparams or DEFAULT_PRESET
    search, space = load_preset(preset)
    overrides = {name: getattr(FLAGS, name) for name in SEARCH_FLAGS}
    if FLAGS.tracker:
        overrides["trackers"] = tuple(FLAGS.tracker)
    if FLAGS.lr_milestones is not None:  # absl gives strings
        try:
            overrides["lr_milestones"] = tuple(int(m) for m in FLAGS.lr_milestones)
        except ValueError:
            raise checks.invalid("--lr_milestones", ",".join(FLAGS.lr_milestones), "epochs, e.g. 50,75") from None
    config = SearchConfig.from_settings(search, overrides, source=preset)  # preset values type-checked
    fixed = {hp: hparam_values(flag) for flag, (hp, _, _) in HPARAM_FLAGS.items() if getattr(FLAGS, flag) is not None}
    for item in FLAGS.rule_hparam or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise checks.invalid("--rule_hparam", item, "expected RULE.NAME=VALUE, e.g. gait.orthogonal_reg=0.1")
        fixed[name.strip()] = Values(split_values(value)) if value.strip() else value.strip()
    return experiment_dir, config, SearchSpace.create(space, fixed, tune_dropout=config.tunes_dropout)


def hparam_values(flag):
    """The `Values` of an hparam flag: its comma-separated list (commas inside a builder's parentheses kept),
    numbers converted; what does not convert is left for the space to refuse, naming the value."""
    hparam, kind, _ = HPARAM_FLAGS[flag]
    given = getattr(FLAGS, flag)
    if kind is bool:
        return given if isinstance(given, Values) else Values([given])
    values = split_values(given)
    if kind is float:
        values = [_number(v) for v in values]
    return Values(values)


def _number(text):
    try:
        return float(text)
    except ValueError:
        return text


def override_lines(space):
    """One line per flag that overrides a value of the preset (issue 24: a flag never drops the preset
    silently): "--lr overrides the preset's lr [0.0003, 0.001] with [0.001]"; none when no flag does."""
    preset = FLAGS.hparams or DEFAULT_PRESET
    search, preset_space = load_preset(preset)
    lines = []
    given = space.as_dict()
    for flag, (hparam, _, _) in HPARAM_FLAGS.items():
        if getattr(FLAGS, flag) is not None and hparam in preset_space:
            lines.append(f"--{flag} overrides the preset's {hparam} {_listed(preset_space[hparam])} with "
                         f"{_listed(given[hparam])}")
    if FLAGS.rule_hparam:
        extras, had = dict(space.extras), rule_entries(preset_space)
        for name in rule_entries({item.partition("=")[0].strip(): None for item in FLAGS.rule_hparam}):
            if name in had:
                lines.append(f"--rule_hparam overrides the preset's {name} {_listed(had[name])} with "
                             f"{_listed(extras[name])}")
    settings = {**{name: name for name in SEARCH_FLAGS}, "tracker": "trackers"}
    for flag, name in settings.items():
        if FLAGS[flag].present and name in search:
            value = getattr(FLAGS, flag)
            lines.append(f"--{flag} overrides the preset's {name} {_listed(search[name])} with {_listed(value)}")
    if not lines:
        return []
    shown = os.path.relpath(preset, REPO) if os.path.abspath(preset).startswith(REPO + os.sep) else preset
    return [f"preset {shown}{' (the default)' if not FLAGS.hparams else ''}, with the command line's values:",
            *(f"  {line}" for line in lines)]


def _listed(value):
    """A preset's or the command line's value as the log shows it: "[0.0003, 0.001]", "true", "30"."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_listed(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return shown_value(value)


def print_results(experiment_dir, project_dir, objective):
    """The table a finished search ends with (the best configuration per rule of its project, `bpfree.results`)
    and their learning curves in EXPERIMENT_DIR/curves.png; a summary that cannot be made is said, not fatal."""
    from bpfree import results

    try:
        frame = results.load(experiment_dir)
        project = os.path.relpath(project_dir, experiment_dir)
        keep = frame["project"] == project if "project" in frame else None  # the experiment's other searches: out
        if keep is not None and "confirmation" in frame:  # the grid's executions (as the selection counts them)
            keep &= ~frame["confirmation"].fillna(False).astype(bool)
        if keep is not None and not keep.all():
            attrs = dict(frame.attrs)
            frame = frame[keep].reset_index(drop=True)
            frame.attrs.update(attrs)
        if frame.empty:
            raise ValueError(f"no records under {project_dir}")
        table = results.best(frame, objective, by=results.rule_column(frame))
        print(results.tables.console(table, width=results.CONSOLE_WIDTH))
        path = results.plot_curves(frame, objective, path=os.path.join(experiment_dir, "curves.png"), table=table)
        print(f"curves: {path}")
    except (ValueError, OSError) as e:
        print(f"(no results table: {e})")


def main(argv):
    from bpfree.tuning import validation
    from bpfree.tuning.options import EngineOptions

    try:
        validation.check_environment()  # KERASTUNER_TUNER_ID names a directory keras-tuner deletes
        # TensorFlow loads in here: with a valid space (its rules import Keras), else in _load_search_modules.
        with console.quiet_start(quiet=not (FLAGS.verbose or console.wants_verbose([]))):  # or TF_CPP_MIN_LOG_LEVEL=0
            experiment_dir, config, space = resolve(argv)
            checks.whole("--workers", FLAGS.workers, lambda v: v >= 0, "must be ≥ 0")
            checks.whole("--confirm_seeds", FLAGS.confirm_seeds, lambda v: v >= 0, "an integer ≥ 0 (0: none)")
            if FLAGS.workers and config.search in ("bayesian", "hyperband"):  # their sequence: the workers' timing
                raise ValueError(f"--workers: search {config.search} runs in one process (each trial is decided from "
                                 "every finished one); drop --workers, or use search random or grid.")
            checks.whole("--members", FLAGS.members, lambda v: 0 <= v <= MAX_MEMBERS,
                         f"an integer in [0, {MAX_MEMBERS}] (0: automatic)")
            checks.whole("batch_size", config.batch_size, lambda v: v <= MAX_BATCH_SIZE,
                         f"an integer in [1, {MAX_BATCH_SIZE}]")
            checks.number("--checkpoint_seconds", FLAGS.checkpoint_seconds, lambda v: v >= 0,
                          "a number ≥ 0 (0: every epoch)")
            engine = EngineOptions(members=FLAGS.members, fit=FLAGS.engine == "fit",
                                   checkpoint_seconds=FLAGS.checkpoint_seconds, save_models=FLAGS.save_models)
            dry_run, run_search = _load_search_modules()  # the flags are good: now Keras and TensorFlow
        # Said once: by a search alone or its coordinator (not by workers, nor by the --workers supervisor,
        # whose coordinator runs this same command line).
        says = distributed.role() == "chief" or (distributed.role() is None and not FLAGS.workers)
        changed = override_lines(space) if says else []
        if changed:
            validation.validate_points(space.grid(), config)  # a bad point is said alone, before what flags changed
            print("\n".join(changed))
        if FLAGS.dry_run:
            dry_run(experiment_dir, config, space, engine, preset=FLAGS.hparams or DEFAULT_PRESET,
                    reset_training=FLAGS.reset_training, workers=FLAGS.workers)
            return 0
        size = plan.GridSize.of(space, config)
        if size.execution_epochs > plan.ASK_ABOVE and not FLAGS.yes:
            validation.validate_points(space.grid(), config)  # a bad point is said first
            plan.check_size(size, FLAGS.yes)
        role = distributed.role()
        reset = FLAGS.reset_training
        if FLAGS.workers and role is None:
            bind = distributed.check_bind(distributed.LOOPBACK if FLAGS.oracle_bind is None else FLAGS.oracle_bind)
            validation.validate_points(space.grid(), config)  # bad input: exit 2 before any process starts
            code = distributed.supervise(experiment_dir, sys.argv[1:], FLAGS.workers, host=bind)
            if code or not FLAGS.confirm_seeds:
                return code
            # The grid is done: its confirmation executions run here, in one process (nothing of the grid is
            # left to train, and nothing is reset twice).
            reset = False
        if role == "chief":  # keras-tuner's chief listens on its KERASTUNER_ORACLE_IP: the flag's, if given
            if FLAGS.oracle_bind is not None:
                os.environ["KERASTUNER_ORACLE_IP"] = distributed.check_bind(FLAGS.oracle_bind)
            bind = distributed.check_bind(os.environ["KERASTUNER_ORACLE_IP"], what="KERASTUNER_ORACLE_IP")
            warning = distributed.bind_warning(bind, os.environ["KERASTUNER_ORACLE_PORT"])
            if warning:
                print(warning, file=sys.stderr)
        summary = run_search(experiment_dir, config, space, reset_training=reset, engine=engine,
                             confirm_seeds=FLAGS.confirm_seeds)
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
    role = distributed.role()
    if role == "worker":  # the coordinator sums the search up
        print(f"{os.environ['KERASTUNER_TUNER_ID']} done: {summary['ran']} grid points run in "
              f"{summary['seconds']:.0f} s ({overhead:.0f} s outside fit)")
        return 0
    ran = ("handed to the workers" if role == "chief"
           else f"run in {summary['seconds']:.0f} s ({overhead:.0f} s outside fit)")
    trials = "trials (grid points at a round's epochs)" if config.search == "hyperband" else "grid points"
    print(f"search done: {summary['ran']} {trials} {ran}; records in {summary['project_dir']}")
    print_results(experiment_dir, summary["project_dir"], config.objective)
    print(f"a report (tests against bp, figures): python -m bpfree.results {summary['project_dir']} --report "
          "report.md")
    return 0


def _load_search_modules():
    """(dry_run, run_search), after TensorFlow, set up by `_configure_tensorflow`, and every class
    a saved model needs (`bpfree.register_classes`). Deferred until the flags are checked, so --help and
    bad input answer without loading any of it."""
    import bpfree

    _configure_tensorflow()
    bpfree.register_classes()
    from bpfree.tuning.dry_run import dry_run
    from bpfree.tuning.search import run_search

    return dry_run, run_search


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


def run(argv=None):
    """The command: --help (-h, --helpshort) prints `help_text`, --helpfull absl's full listing, both
    exit 0; otherwise absl parses the flags and `main` runs."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if any(a in ("-h", "--help", "-help", "--helpshort", "-helpshort", "-?") for a in args):
        print(help_text())
        sys.exit(0)
    if any(a in ("--helpfull", "-helpfull") for a in args):
        print(f"usage: {USAGE}\n\n{FLAGS.get_help()}")
        sys.exit(0)
    app.run(lambda parsed: sys.exit(main(parsed)), argv=argv)
