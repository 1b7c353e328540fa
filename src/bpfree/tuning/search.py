"""One grid search in an experiment directory: lock, config, data, oracle, tuner, records."""

import json
import os
import re
import shutil
import time

from bpfree import checks, datasets, io, records
from bpfree.tuning import confirmation, distributed, tensorboard_hparams, tensorboard_summary
from bpfree.tuning.options import EngineOptions, points_per_trial, program_members
from bpfree.tuning.hypermodel import BpfreeHyperModel
from bpfree.tuning.lock import ExperimentLock
from bpfree.tuning.oracle import valid_records
from bpfree.tuning.searches import make_oracle
from bpfree.tuning.tuner import GridTuner, device
from bpfree.tuning.config import SearchConfig
from bpfree.tuning.validation import validate_points
from bpfree.tuning.search_data import SearchData

CONFIG_FILE = "config.json"


class ExperimentMismatch(ValueError):
    pass


def project_dir(experiment_dir, config, space):
    return os.path.join(experiment_dir, space.project_name(config.dataset, config.problem_type, config.objective))


def run_search(experiment_dir, config, space, *, reset_training=False, log=print, engine=None, confirm_seeds=0):
    """Runs (or resumes) the grid; returns a summary dict. Raises ValueError subclasses on bad input.

    ``engine``: `EngineOptions` (how many executions of a structure one program trains in the same
    kernels, `bpfree.tuning.engine`; or `fit`; how often checkpoints are written). They change no
    number a search records (each execution trains exactly as alone), so they are not search settings.

    Under keras-tuner's distributed environment variables (see `bpfree.tuning.distributed`) the chief
    only serves the grid oracle and the workers only run trials; otherwise one process does both.

    ``confirm_seeds`` = N: once every grid execution has finished, each rule's chosen configuration trains N
    confirmation executions with fresh seeds (`bpfree.tuning.confirmation`), in a single-process search (a
    distributed one runs them when it is run again without workers: `--workers` does that itself).
    """
    checks.whole("confirm_seeds", confirm_seeds, lambda v: v >= 0, "an integer ≥ 0 (0: none)")
    directory = project_dir(experiment_dir, config, space)
    _check_writable(experiment_dir)
    points = space.grid()
    validate_points(points, config, config.dataset_info())
    role = distributed.role()
    if role == "worker":  # the chief's oracle decides what runs; this one only declares the space
        oracle = _oracle(directory, config, points, role, engine)
        return _run(directory, config, space, oracle.points, oracle, role, log, engine)
    started = time.time()
    with ExperimentLock(directory):
        # Writes a killed run left half done (kill -9 during a checkpoint or record): never read, now removed.
        io.remove_stale_temporaries(directory, before=started)
        if reset_training:
            for sub in (records.RECORDS_DIRNAME, "tensorboard", "keras_tuner", CONFIG_FILE):
                path = os.path.join(directory, sub)
                shutil.rmtree(path) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)
            if os.path.isdir(confirmation.directory_of(directory)):
                shutil.rmtree(confirmation.directory_of(directory))
        check_record_settings(directory, config, space, log)  # first: a config.json written now would hide it
        check_engine(directory, config, engine or EngineOptions())
        _write_or_check_config(directory, config, space)
        oracle = _oracle(directory, config, points, role, engine)
        points = oracle.points  # the random search's sample; else the grid
        log(f"{directory}: {oracle.describe()}")
        tensorboard_hparams.write_config(os.path.join(directory, "tensorboard"), space, config)
        summary = _run(directory, config, space, points, oracle, role, log, engine)
        tensorboard_summary.write_best(directory, log=log)  # TensorBoard runs best/<rule>
        summary["unfinished"] = oracle.unfinished_executions()
        if confirm_seeds and role is None:
            if summary["unfinished"]:
                log("confirmation: waits until every grid execution has finished (re-run the same command)")
            else:
                def run_grid(confirm_dir, confirm_config, chosen, confirm_oracle, count):
                    check_record_settings(confirm_dir, confirm_config, space, log)
                    check_engine(confirm_dir, confirm_config, engine or EngineOptions())
                    _write_or_check_config(confirm_dir, confirm_config, space)
                    found = _run(confirm_dir, confirm_config, space, chosen, confirm_oracle, None, log, engine,
                                 confirmation_of=count)
                    found["unfinished"] = confirm_oracle.unfinished_executions()
                    return found

                confirmed = confirmation.run(directory, config, points, confirm_seeds, log, run_grid)
                summary["confirmation"] = confirmed
                summary["unfinished"] = summary["unfinished"] + confirmed["unfinished"]
        return summary


def _oracle(directory, config, points, role=None, engine=None):
    """The oracle of `config.search` (`bpfree.tuning.searches`), each trial a cohort of as many grid points of
    one structure as fill a program (`options.points_per_trial`; the coordinator of a distributed search sizes
    them by its own device). A bayesian search proposes each trial from every finished one, and a hyperband search
    decides each round from the one before, so they run in one process (workers would make its sequence depend on timing)."""
    if role is not None and config.search in ("bayesian", "hyperband"):
        raise ValueError(f"search {config.search} runs in one process (each trial is decided from every finished "
                         "one): drop --workers (or KERASTUNER_TUNER_ID), or use search random or grid.")
    cohort = points_per_trial(engine or EngineOptions(), config.jit_compile, config.executions_per_trial, device())
    return make_oracle(points, directory, config, cohort_size=cohort)


def _run(directory, config, space, points, oracle, role, log, engine=None, confirmation_of=None):
    meta = config.dataset_info()
    output_dim = meta.num_classes if config.problem_type == "classification" else meta.features
    hypermodel = BpfreeHyperModel(space, config, meta.input_shape, output_dim)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "local")
    # keras-tuner deletes <directory>/<project_name> (overwrite=True): never let the id name a path.
    project_name = re.sub(r"[^A-Za-z0-9_.-]", "_", tuner_id).strip(".") or "local"
    # What serves the data (tfds, or IDX files offline): said once, and kept in every record — not a search
    # setting, since the same experiment may resume on a machine that reads the same set from elsewhere.
    data_source = datasets.source(config.dataset)
    log(f"data: {config.dataset} from {data_source}")
    tuner = GridTuner(oracle, hypermodel, directory, config, log=log, directory=os.path.join(directory, "keras_tuner"),
                      project_name=project_name, overwrite=True, engine_options=engine or EngineOptions(),
                      points=points, data_source=data_source, confirmation_of=confirmation_of)
    start = time.perf_counter()
    if role == "chief":
        distributed.serve(tuner)
        return {"project_dir": directory, "grid_points": len(points), "ran": len(oracle.handed_out),
                "seconds": time.perf_counter() - start, "fit_seconds": 0.0, "accidents": []}
    data = SearchData(config)
    tuner.progress.done = len(oracle.finished_ids) * config.executions_per_trial
    start = time.perf_counter()
    tuner.search(data, verbose=0)
    return {"project_dir": directory, "grid_points": len(points), "ran": tuner.trials_run,
            "seconds": time.perf_counter() - start, "fit_seconds": tuner.fit_seconds, "accidents": tuner.accidents}


def check_record_settings(directory, config, space=None, log=None):
    """Refuses to resume where a record was made under other search settings (epochs, batch size,
    data, seed, ...) than this search's, named — whether or not config.json is still there. A record made
    before the score setting existed was scored by its best epoch (`bpfree.scoring`), and says so here.

    Where config.json says the experiment runs this search's settings (`space` given, and `log` to say it),
    a record made under others does not belong where it lies (a copy from another experiment): it is moved
    aside (``corrupt_*``, named in one line) and its execution runs again, as a corrupt record's does."""

    current = json.loads(json.dumps(config.to_json()))
    foreign = space is not None and log is not None and _config_is(directory, config, space)
    for path, data in valid_records(directory):
        recorded = data.get("search")
        if not recorded:
            continue  # a record from before settings were recorded: config.json is the only check
        recorded = SearchConfig.completed(recorded)
        changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k)
                         and not _grows(k, recorded.get(k), current.get(k), current))
        if changed and foreign:
            aside = records.set_aside(path, "corrupt")
            log(f"  a record made under other search settings than its experiment's ({', '.join(changed)}) moved "
                f"aside to {aside}; its execution runs again")
        elif changed:
            details = ", ".join(f"{k} {recorded.get(k)!r} → {current.get(k)!r}" for k in changed)
            raise ExperimentMismatch(
                f"{path} was recorded with other search settings ({details}){_schedule_note(changed, current)}; "
                "re-run with the same flags, "
                "pass --reset_training to start over, or use another EXPERIMENT_DIR."
            )


def _config_is(directory, config, space):
    """Whether `directory`'s config.json holds this search's settings (the same, or grown by it)."""
    if not os.path.exists(os.path.join(directory, CONFIG_FILE)):
        return False
    try:
        return _write_or_check_config(directory, config, space, write=False) in ("same", "grown")
    except ExperimentMismatch:
        return False


def check_engine(directory, config, engine):
    """Refuses a search whose programs would train without XLA with another member count (or another engine)
    than its records were: there, unlike under XLA, a member's numbers depend on how many members its program
    has (`options.program_members`), so the same experiment would hold numbers of two different runs."""
    if config.jit_compile:
        return
    now = {"fit": True} if engine.fit else {"members": program_members(engine, False, 1, 0, 0)}
    for path, data in valid_records(directory):
        recorded = data.get("engine")
        if not isinstance(recorded, dict) or recorded.get("xla") is not False:
            continue  # older records, or trained under XLA
        before = {"fit": True} if recorded.get("fit") else {"members": recorded.get("members")}
        # A record trained through fit under the members engine may be a model programs cannot train (its own
        # train step, trackers): it trains through fit again, so that pair is no change.
        if before != now and not ("fit" in before and "members" in now):
            def how(engine_used):
                return "through fit" if "fit" in engine_used else f"by programs of {engine_used['members']} members"

            flag = "--engine fit" if "fit" in before else f"--members {before['members']}"
            raise ExperimentMismatch(
                f"{path} was trained without XLA {how(before)}, and this search would train {how(now)}: without XLA "
                f"a member's numbers depend on that; re-run with {flag}, pass --reset_training to start over, or "
                "use another EXPERIMENT_DIR.")


def _write_or_check_config(directory, config, space, write=True):
    """Writes config.json for a new experiment, or checks this search against the one there (refusing a
    change that would make records incomparable, named); rewrites it where the search only grows the
    experiment (`_grown`). Returns "new", "same" or "grown"; with ``write=False`` (a dry run) writes nothing."""

    payload = {"search": config.to_json(), "space": {k: list(v) for k, v in space.values + space.extras},
               "fixed": sorted(space.fixed)}
    path = os.path.join(directory, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                existing = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ExperimentMismatch(f"Corrupt {path} ({e}); restore it, pass --reset_training to start over, "
                                     "or use another EXPERIMENT_DIR.") from None
        if not (isinstance(existing, dict) and isinstance(existing.get("search"), dict)
                and isinstance(existing.get("space"), dict)):
            raise ExperimentMismatch(f"Corrupt {path}: expected an object with 'search' and 'space' tables; "
                                     "restore it, pass --reset_training to start over, or use another EXPERIMENT_DIR.")
        payload = json.loads(json.dumps(payload))
        existing["search"] = SearchConfig.completed(existing["search"])  # settings added since: as they were
        if existing != payload and _grown(existing, payload):  # more seeds, epochs or grid values: only they run
            if write:
                io.write_json(path, payload)
            return "grown"
        if existing != payload:
            def differences(before, after, prefix="", keys=None):  # ["<prefix><key> <before> → <after>"]
                keys = sorted(set(before) | set(after), key=str) if keys is None else keys
                shown = {k: [repr(side[k]) if k in side else "(none)" for side in (before, after)] for k in keys
                         if k not in before or k not in after or before[k] != after[k]}
                return [f"{prefix}{k} {old} → {new}" for k, (old, new) in shown.items()]

            others = sorted((set(existing) | set(payload)) - {"search", "space"})  # "fixed"
            changed = (differences(existing["search"], payload["search"])
                       + differences(existing["space"], payload["space"], prefix="space.")
                       + differences(existing, payload, keys=others))
            note = _schedule_note([k for k in payload["search"] if existing["search"].get(k) != payload["search"][k]],
                                  payload["search"])
            raise ExperimentMismatch(
                f"{directory} was started with other settings ({', '.join(changed)} differ){note}; "
                "re-run with the same flags, pass --reset_training to start over, or use another EXPERIMENT_DIR."
            )
        return "same"
    if write:
        io.write_json(path, payload)
    return "new"


def check_config(directory, config, space):
    """What `run_search` would find in `directory` without writing anything: "new", "same" or "grown"
    (more seeds, epochs or grid values); raises ExperimentMismatch where the search would refuse."""
    check_record_settings(directory, config)
    return _write_or_check_config(directory, config, space, write=False)


# Settings an experiment may grow in place: only what is new runs (more seeds; more epochs, finished
# executions resuming from their final state), and every existing record stays comparable.
GROWABLE = ("num_epochs", "executions_per_trial", "max_trials")
# A random search's sample and a bayesian search's sequence extend with max_trials (the same first trials,
# then more). A bayesian search grows in nothing else: more epochs or seeds would change the scores its
# later trials were proposed from. Neither grows its space: new values would reorder the seeded order. A
# hyperband search grows in nothing: its brackets follow from num_epochs and hyperband_factor, its rounds'
# promotions from the scores of its executions, and a larger max_trials could refill a bracket cut short.


# A cosine schedule's rate of every epoch depends on num_epochs (bpfree.schedules): more epochs would
# change the rates the finished epochs were trained with.
FIXED_EPOCHS_SCHEDULES = ("cosine",)


def _grows(name, before, after, settings=None):
    """Whether changing setting `name` from `before` to `after` grows the experiment (see GROWABLE), under
    the search `settings` (a dict; num_epochs does not grow under a cosine schedule)."""
    if name == "num_epochs" and (settings or {}).get("lr_schedule") in FIXED_EPOCHS_SCHEDULES:
        return False
    if (settings or {}).get("search") == "bayesian" and name != "max_trials":
        return False
    if (settings or {}).get("search") == "hyperband":
        return False
    return name in GROWABLE and isinstance(before, int) and isinstance(after, int) and after > before


def _schedule_note(changed, settings):
    """Why num_epochs cannot grow, where that is among the `changed` settings."""
    if "num_epochs" in changed and settings.get("lr_schedule") in FIXED_EPOCHS_SCHEDULES:
        return f" (lr_schedule {settings['lr_schedule']} depends on num_epochs, so its epochs cannot grow)"
    if settings.get("search") == "bayesian" and set(changed) & {"num_epochs", "executions_per_trial"}:
        return (" (a bayesian search proposed its later trials from the scores these settings gave: it grows "
                "only in max_trials)")
    if settings.get("search") == "hyperband" and set(changed) & set(GROWABLE):
        return (" (a hyperband search's brackets and promotions follow from these settings and the scores they "
                "gave: it grows in nothing)")
    return ""


def _grown(existing, payload):
    """Whether config.json `payload` only grows `existing`: search settings equal or growing, every hparam
    of the space keeping all its values (new values may join), the same fixed hparams."""
    search_before, search_after = existing.get("search", {}), payload["search"]
    if set(search_before) != set(search_after) or existing.get("fixed") != payload.get("fixed"):
        return False
    if any(search_before[k] != search_after[k] and not _grows(k, search_before[k], search_after[k], search_after)
           for k in search_after):
        return False
    space_before, space_after = existing.get("space", {}), payload["space"]
    if search_after.get("search", "grid") != "grid" and space_before != space_after:
        return False  # the seeded order (random, bayesian) is of the whole space: new values would reorder it
    return set(space_before) == set(space_after) and all(
        all(v in space_after[k] for v in space_before[k]) for k in space_after)


def _check_writable(experiment_dir):
    try:
        os.makedirs(experiment_dir, exist_ok=True)
    except OSError as e:
        raise ValueError(f"Cannot create experiment dir {experiment_dir!r}: {e.strerror}.") from None
    if not os.access(experiment_dir, os.W_OK | os.X_OK):
        raise ValueError(f"Experiment dir {experiment_dir!r} is not writable.")
