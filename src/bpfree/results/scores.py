"""Scores and the best trials of a `load` frame: an execution's score, a trial's mean ± std, `best`.

Every objective is minimised. An execution's score is its objective at the epochs its search's ``score``
setting names (`bpfree.scoring`: "final", "best" or "last<k>"; "best" for searches recorded before that
setting; "final" for experiment records, which have no search); a trial's score is the mean (± the sample
std) over its executions whose score is finite. The objective is the one each search was run with, unless
given. Grouping by algorithm also groups by each rule hparam that varies among a rule's trials (gait with
orthogonal_reg 0.1 and 0.01 are two rows).
"""

import math

import numpy as np
import pandas as pd

from bpfree import checks, scoring
from bpfree.hparam_names import HPARAMS
from bpfree.results.frame import hparam_columns, metric_columns, test_columns

DEFAULT_OBJECTIVES = ("val_error_rate", "val_loss", "error_rate", "loss")


def recorded_objective(frame):
    """The objective the records' searches were run with; for records without one (experiments, older
    records), the first logged of val_error_rate, val_loss, error_rate, loss. A ValueError when the
    searches used several (then name one)."""
    recorded = sorted(set(frame["objective"].dropna())) if "objective" in frame else []
    if len(recorded) > 1:
        raise ValueError(f"These records come from searches with different objectives ({', '.join(recorded)}); "
                         "choose one with --objective (objective= in Python).")
    if recorded:
        return recorded[0]
    for name in DEFAULT_OBJECTIVES:
        if name in frame and frame[name].notna().any():
            return name
    raise ValueError(f"No objective metric in the records (none of {', '.join(DEFAULT_OBJECTIVES)}); "
                     "choose one with --objective.")


def _check_objective(frame, objective):
    objective = recorded_objective(frame) if objective is None else objective
    if objective not in metric_columns(frame):
        raise checks.unknown("objective", objective, metric_columns(frame), owner="these records")
    return objective


def execution_scores(frame, objective=None, score=None):
    """One row per execution: project, trial_id, execution, seed, status, score (its objective by its score
    rule), scored_by, from_epoch and to_epoch (the 1-based epochs the score comes from; NaN where none),
    epochs (run), stopped_by and partial (`bpfree.results.load`), test.<metric>, and its hparams. `score` overrides every record's own rule."""
    objective = _check_objective(frame, objective)
    if score is not None:
        scoring.check_score(score)
    keys = ["project", "trial_id", "execution"]
    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        rule = score or (group["scored_by"].iloc[0] if "scored_by" in group else scoring.BEFORE_THE_SETTING)
        values = group.sort_values("epoch")[objective].tolist()
        epochs = int(group["epoch"].notna().sum())
        value, epoch = scoring.execution_score({objective: values}, objective, rule)
        used = scoring.epochs_used(rule, epoch, epochs) if math.isfinite(value) else None
        rows.append({**dict(zip(keys, key)), "score": value, "scored_by": rule,
                     "from_epoch": used[0] if used else np.nan, "to_epoch": used[1] if used else np.nan,
                     "epochs": epochs})
    out = pd.DataFrame(rows, columns=keys + ["score", "scored_by", "from_epoch", "to_epoch", "epochs"])
    first = frame.drop_duplicates(keys).set_index(keys)
    extra = [c for c in ["seed", "status", "stopped_by", "partial", *test_columns(frame), *hparam_columns(frame)]
             if c in first]
    out = out.join(first[extra], on=keys)
    out.attrs["objective"] = objective
    return out


def trial_scores(frame, objective=None, score=None):
    """One row per trial: the mean and std of its executions' finite scores (columns `objective` and
    `objective`_std), executions (how many are finite) of runs, scored_by, from_epoch / to_epoch (the
    1-based epochs its scores come from, over its executions), epochs, test.<metric> mean and _std, hparams."""
    per = execution_scores(frame, objective, score)
    objective = per.attrs["objective"]
    keys = ["project", "trial_id"]
    grouped = per.groupby(keys, sort=True)
    trials = grouped["score"].agg(**{objective: "mean", f"{objective}_std": "std", "executions": "count"})
    trials["runs"] = grouped.size()
    trials["scored_by"] = grouped["scored_by"].first()
    trials["from_epoch"], trials["to_epoch"] = grouped["from_epoch"].min(), grouped["to_epoch"].max()
    trials["epochs"] = grouped["epochs"].max()
    for column in test_columns(per):
        trials[column], trials[f"{column}_std"] = grouped[column].mean(), grouped[column].std()
    hparams = [c for c in hparam_columns(frame) if c in per]
    if hparams:
        trials = trials.join(grouped[hparams].first())
    trials = trials.reset_index()
    trials.attrs["objective"] = objective
    return trials


def parse_by(by):
    """`by` as a list of column names: None, a name, "algorithm,arch" or a list."""
    if by is None:
        return []
    if isinstance(by, str):
        return [name.strip() for name in by.split(",") if name.strip()]
    return list(by)


def rule_hparams_that_vary(trials, by, hparams):
    """The rules' own hparams among `hparams` (those not common to all: `bpfree.hparam_names.HPARAMS`) whose
    value differs among the trials of one `by` group; only when grouping by algorithm (they are the rule's)."""
    if "algorithm" not in by:
        return []
    own = [c for c in hparams if c in trials and c not in HPARAMS and c not in by]
    return [c for c in own if (trials.groupby(by, dropna=False)[c].nunique(dropna=False) > 1).any()]


def best(frame, objective=None, by=None, score=None):
    """The best trial (lowest score) overall, or per group of `by` (a column, "a,b" or a list), all sorted.

    `objective` defaults to the search's own (`recorded_objective`); `score` to each record's rule. The
    result's attrs hold "objective", "score" and "by" (the grouping columns, rule hparams included).
    Confirmation executions (re-runs of chosen configurations) take no part in the selection, nor do Hyperband's
    executions trained to fewer epochs than their search's num_epochs (`partial`: stopped by a round, or not yet
    promoted): the selection compares the points trained to the full budget (Hyperband's answer). attrs
    "partial": {"stopped by hyperband": executions, "not yet decided": executions} of those left out."""
    if "confirmation" in frame:
        frame = frame[~frame["confirmation"].fillna(False).astype(bool)]
    left_out = {}
    if "partial" in frame and frame["partial"].fillna(False).astype(bool).any():
        short = frame["partial"].fillna(False).astype(bool)
        runs = frame[short].drop_duplicates(["project", "trial_id", "execution"])
        stopped = int(runs["stopped_by"].notna().sum()) if "stopped_by" in runs else 0
        left_out = {f"stopped by {name}": int(n) for name, n in runs["stopped_by"].value_counts().items()}
        if len(runs) > stopped:
            left_out["not yet decided"] = len(runs) - stopped
        frame = frame[~short]
    trials = trial_scores(frame, objective, score)
    objective = trials.attrs["objective"]
    trials = trials.dropna(subset=[objective]).sort_values(objective, kind="stable")
    by = parse_by(by)
    for column in by:
        if column not in hparam_columns(frame):
            raise checks.unknown("hparam", column, hparam_columns(frame), owner="grouping")
    if by:
        by = by + rule_hparams_that_vary(trials, by, hparam_columns(frame))
        trials = trials.groupby(by, sort=False, dropna=False).head(1).sort_values(by, kind="stable")
        trials = trials[by + [c for c in trials.columns if c not in by]]
    table = trials.reset_index(drop=True)
    table.attrs.update(objective=objective, score=score, by=by, hparams=hparam_columns(frame), partial=left_out)
    return table
