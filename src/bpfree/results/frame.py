"""The records of an experiment directory as one pandas DataFrame, one row per (trial, execution, epoch).

This is where the read side meets the write side (`bpfree.records`); everything else in `bpfree.results`
works on the frame `load` returns and knows its columns through the helpers here.
"""

import logging
import os

import numpy as np
import pandas as pd

from bpfree import checks, records, scoring
from bpfree.hparam_names import HPARAMS

BASE_COLUMNS = ("project", "trial_id", "execution", "epoch", "status", "seed", "confirmation", "wall_time", "objective",
                "scored_by", "stopped_by", "partial")
TEST_PREFIX = "test."


def load(experiment_dir, errors=None):
    """Every execution record under `experiment_dir` as one DataFrame, one row per epoch.

    Columns: project (the sub-directory of the search), trial_id, execution, epoch (0-based), status, seed,
    confirmation (True for a confirmation execution: a chosen configuration re-run after the selection with a
    fresh seed, ``record["confirmation"]``; False when the record has no such field), wall_time, objective
    (the search's; None for experiment records), scored_by (`scoring.recorded_score`), stopped_by ("hyperband"
    where a Hyperband round left the execution out, ``record["stopped_by"]``; None otherwise), partial (True for
    a Hyperband execution cut short by its budget, `partial`: stopped, or waiting for its round's promotion;
    `bpfree.results.best` leaves it out), test.<metric> (the
    execution's test-split metrics, where recorded), every hparam by its long name, every metric. A corrupt
    record file is skipped with a warning naming it (and appended to `errors` when a list is given); the rest
    still loads.
    """
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"No experiment directory {experiment_dir!r}.")
    rows = []
    hparams, metrics, tests = {}, {}, {}
    for path in records.iter_record_paths(experiment_dir):
        try:
            data = _read(path)
        except records.RecordError as e:
            logging.getLogger("bpfree").warning("%s", e)
            if errors is not None:
                errors.append(str(e))
            continue
        project = os.path.relpath(os.path.dirname(os.path.dirname(os.path.dirname(path))), experiment_dir)
        if data.get("confirmation") is True:  # "<project>-confirmation": counted to the search's project
            project = project.removesuffix(records.CONFIRMATION_SUFFIX)
        search = data.get("search")
        test = {f"{TEST_PREFIX}{k}": (np.nan if v is None else v) for k, v in (data.get("test") or {}).items()}
        base = {"project": project, "trial_id": data["trial_id"], "execution": data["execution"],
                "status": data["status"], "seed": data.get("seed"),
                "confirmation": bool(data.get("confirmation") or False), "wall_time": data.get("wall_time"),
                "objective": (search or {}).get("objective"), "scored_by": scoring.recorded_score(search),
                "stopped_by": data.get("stopped_by"), "partial": partial(data),
                **test, **data["hparams"]}
        history = data["history"]
        hparams.update(dict.fromkeys(data["hparams"]))
        metrics.update(dict.fromkeys(history))
        tests.update(dict.fromkeys(test))
        epochs = max((len(v) for v in history.values()), default=0)
        if not epochs:
            rows.append({**base, "epoch": np.nan})
        for epoch in range(epochs):
            rows.append({**base, "epoch": epoch,
                         **{k: (v[epoch] if epoch < len(v) and v[epoch] is not None else np.nan)
                            for k, v in history.items()}})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    ordered = [c for c in BASE_COLUMNS if c in frame] + list(tests) + list(hparams) + list(metrics)
    frame = frame[ordered].sort_values(["project", "trial_id", "execution", "epoch"], ignore_index=True)
    frame.attrs["hparams"], frame.attrs["metrics"], frame.attrs["tests"] = list(hparams), list(metrics), list(tests)
    return frame


def _read(path):
    """`records.read`, and the fields only this side reads: search.score, test, confirmation and stopped_by."""
    data = records.read(path)
    inconsistent = records.inconsistency(data)
    if inconsistent:  # the search repairs it (`records.done`); until then it is no result
        raise records.RecordError(f"Inconsistent record file {path}: {inconsistent}; re-run the search to repair it.")
    try:
        scoring.recorded_score(data.get("search"))
    except ValueError as e:
        raise records.RecordError(f"Corrupted record file {path}: {e}") from None
    test = data.get("test")
    if test is not None and not (isinstance(test, dict) and all(
            v is None or checks.is_number(v) for v in test.values())):
        raise records.RecordError(f"Corrupted record file {path}: invalid test (a {{metric: number}} object).")
    if data.get("confirmation") is not None and not isinstance(data["confirmation"], bool):
        raise records.RecordError(f"Corrupted record file {path}: invalid confirmation (true or false).")
    if data.get("stopped_by") is not None and not isinstance(data["stopped_by"], str):
        raise records.RecordError(f"Corrupted record file {path}: invalid stopped_by (a search's name).")
    return data


def partial(data):
    """Whether record `data` is of a Hyperband execution cut short by its budget: asked fewer epochs than its
    search's num_epochs and trained to them (one that early stopping ended before its budget would have
    stopped there trained straight to num_epochs too: it is no less than a full one)."""
    asked, full = records.asked_epochs(data), (data.get("search") or {}).get("num_epochs")
    return ("hyperband" in data and isinstance(asked, int) and isinstance(full, int) and asked < full
            and records.epochs_done(data["history"]) >= asked)


def hparam_columns(frame):
    """The hparam columns of a `load` frame (recorded in its attrs; the known names otherwise)."""
    if "hparams" in frame.attrs:
        return [c for c in frame.attrs["hparams"] if c in frame]
    return [c for c in HPARAMS if c in frame]


def metric_columns(frame):
    """The metric columns of a `load` frame: what an objective may be."""
    if "metrics" in frame.attrs:
        return [c for c in frame.attrs["metrics"] if c in frame]
    others = set(BASE_COLUMNS) | set(hparam_columns(frame))
    return [c for c in frame.columns if c not in others and not str(c).startswith(TEST_PREFIX)]


def test_columns(frame):
    """The test.<metric> columns of a frame."""
    return [c for c in frame.columns if str(c).startswith(TEST_PREFIX)]


def rule_column(frame):
    """The column naming the rule of each record: "algorithm" (searches), "model" (experiments), else None."""
    return next((c for c in ("algorithm", "model") if c in hparam_columns(frame)), None)
