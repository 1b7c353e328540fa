"""Runs a table's protocol: one ordinary, resumable grid search per dataset of the table, in one experiment dir.

Every dataset's settings and grid are checked before anything trains (bad input: one line, exit 2). Each
invocation's wall and CPU seconds per dataset are appended to ``<experiment dir>/benchmark_runs.json``
(atomically), which the document sums; the records themselves are the search's, so growth, resume and
``python -m bpfree.results`` apply as to any search.
"""

import json
import os
import resource
import sys
import time

from bpfree import checks, io
from bpfree.benchmarks.specs import PROTOCOLS, scaled_milestones

RUNS_FILE = "benchmark_runs.json"


def settings(table, dataset, protocol="reduced"):
    """(search settings, space) of `table`'s `protocol` on `dataset`: the preset, the dataset's own settings,
    and what the protocol changes (a step schedule's milestones scaled to fewer epochs)."""
    from bpfree.tuning.presets import load_preset

    checks.choice("protocol", protocol, PROTOCOLS)
    search, space = load_preset(table.preset)
    search = {**search, **table.per_dataset.get(dataset, {}), "dataset": dataset}
    if protocol != "full":
        reduced = table.changes(protocol)
        if "lr" in reduced:
            space["lr"] = reduced.pop("lr")
        if search.get("lr_milestones") and "num_epochs" in reduced:
            reduced["lr_milestones"] = scaled_milestones(search["lr_milestones"], reduced["num_epochs"],
                                                         search["num_epochs"])
            if not reduced["lr_milestones"]:  # a one-epoch run has no step
                reduced["lr_schedule"] = "constant"
        search.update(reduced)
    return search, space


def plan(table, protocol, datasets=None, validate=False):
    """[(dataset, SearchConfig, SearchSpace)] for the datasets asked (all of the table's by default), their
    settings checked; with `validate`, every grid point of every column too, before anything trains."""
    from bpfree.tuning import SearchConfig, SearchSpace
    from bpfree.tuning.validation import validate_points

    out = []
    for dataset in datasets or table.datasets:
        search, space = settings(table, dataset, protocol)
        config = SearchConfig.from_settings(search, source=table.preset)
        out.append((dataset, config, SearchSpace.create(space, tune_dropout=config.tunes_dropout)))
    if validate:
        for _, config, space in out:
            validate_points(space.grid(), config, config.dataset_info())
    return out


def describe(table, protocol="reduced", datasets=None, log=print):
    """What `run` would run, checked as it would check it (bad input raises before anything is said);
    trains nothing and writes nothing."""
    total = 0
    for dataset, config, space in plan(table, protocol, datasets, validate=True):
        size = space.size() * config.executions_per_trial * config.num_epochs
        total += size
        log(f"{table.name} {dataset} ({protocol}): {space.size()} grid points ("
            f"{', '.join(space.as_dict()['algorithm'])} × lr {', '.join(f'{v:g}' for v in space.as_dict()['lr'])}) × "
            f"{config.executions_per_trial} seed(s) × {config.num_epochs} epochs = {size:,} execution-epochs")
    log(f"{table.name}: {total:,} execution-epochs in all; nothing trained (--dry_run)")
    return total


def run(table, experiment_dir, protocol="reduced", datasets=None, log=print, members=0):
    """Runs (or resumes) every dataset's search of `table`; returns the datasets whose search is unfinished."""
    from bpfree.tuning import run_search
    from bpfree.tuning.options import EngineOptions

    unfinished = []
    for dataset, config, space in plan(table, protocol, datasets, validate=True):
        log(f"{table.name}: {dataset} ({protocol} protocol: {config.num_epochs} epochs, "
            f"{config.executions_per_trial} seed(s), lr {', '.join(f'{v:g}' for v in space.as_dict()['lr'])})")
        wall, cpu = time.time(), _cpu_seconds()
        summary = run_search(experiment_dir, config, space, log=log,
                             engine=EngineOptions(members=members))
        record_run(experiment_dir, {"dataset": dataset, "protocol": protocol,
                                    "started": wall, "wall_seconds": time.time() - wall,
                                    "cpu_seconds": _cpu_seconds() - cpu, "ran": summary.get("ran"),
                                    "argv": sys.argv[1:], "complete": not summary.get("unfinished")})
        if summary.get("unfinished"):
            unfinished.append(dataset)
    return unfinished


def record_run(experiment_dir, entry):
    io.write_json(os.path.join(experiment_dir, RUNS_FILE), read_runs(experiment_dir) + [entry])


def read_runs(experiment_dir):
    """The runs recorded so far (an unreadable file counts as none: it is rewritten whole)."""
    try:
        with open(os.path.join(experiment_dir, RUNS_FILE)) as f:
            runs = json.load(f)
        return runs if isinstance(runs, list) else []
    except (OSError, ValueError):
        return []


def _cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
