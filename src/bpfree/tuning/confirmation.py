"""Confirmation executions: each rule's chosen configuration re-run with fresh seeds after the selection.

The grid's executions chose each rule's configuration (its best validation score); their test scores are
not independent of that choice. With ``confirm_seeds`` = N, once every grid execution has finished, each
rule's best configuration (`bpfree.results.best`, the report's selection) trains N more executions whose
seeds no grid execution used (`bpfree.seeds.confirmation`), on the same data (same split, same
``examples_frac`` subsample), with the same engine, records and checkpoints as the grid — in the project
directory's twin ``<project>-confirmation`` (`bpfree.records.CONFIRMATION_SUFFIX`), each record marked
``"confirmation": true``. The read side counts them to the project, leaves them out of the selection and
runs the report's paired tests on them (`bpfree.results.report`).

It is part of the same resumable experiment: a run that stops during it resumes it; a rerun trains nothing
that has finished; more seeds add executions; if a grown grid changes a rule's choice, the new choice gets
its executions (those of the old one stay on disk and are no longer used).
"""

import dataclasses
import os

from bpfree import records
from bpfree.choices import DEFAULT_HYPERBAND_FACTOR
from bpfree.tuning.oracle import GridOracle
from bpfree.tuning.space import trial_id


def chosen_points(directory, config, points):
    """The grid points chosen per rule from the finished records under `directory` (the report's selection)."""
    from bpfree import results  # the read side: pandas, no TensorFlow

    frame = results.load(directory)
    if frame.empty:
        return []
    table = results.best(frame, config.objective, by="algorithm", score=config.score)
    by_id = {trial_id(p): p for p in points}
    return [by_id[t] for t in table["trial_id"] if t in by_id]


def directory_of(project_directory):
    return os.path.normpath(project_directory) + records.CONFIRMATION_SUFFIX


def run(directory, config, points, count, log, run_grid):
    """Trains `count` confirmation executions of each rule's chosen point; `run_grid(directory, config, points,
    oracle, confirmation_of)` runs a grid of points (`bpfree.tuning.search`). Returns its summary."""
    chosen = chosen_points(directory, config, points)
    confirm_dir = directory_of(directory)
    os.makedirs(confirm_dir, exist_ok=True)
    oracle = GridOracle(chosen, confirm_dir, config.objective, count, config.num_epochs)
    log(f"confirmation: {len(chosen)} chosen configurations × {count} fresh seeds in {confirm_dir}, "
        f"{len(oracle.finished_ids)} already finished: {', '.join(trial_id(p) for p in chosen)}")
    # A grid of the chosen points, whatever search chose them (random, bayesian: `bpfree.tuning.searches`).
    confirm_config = dataclasses.replace(config, executions_per_trial=count, search="grid", max_trials=None,
                                         hyperband_factor=DEFAULT_HYPERBAND_FACTOR)
    return run_grid(confirm_dir, confirm_config, chosen, oracle, count)
