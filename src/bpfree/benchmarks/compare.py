"""Our numbers for a published table, from the records, and the targets they are held to. No TensorFlow.

Selection never sees the test split: an execution's epoch is its best validation epoch (score "best"), a
rule's learning rate the one whose executions' mean validation score is lowest, and the test error reported
is each of that configuration's executions' ``test_error_rate`` at its own chosen epoch (recorded every epoch
by ``test_each_epoch``), as mean ± sample std over seeds.

Targets (issue 21): BP within 2 published standard deviations (0.3 points where that is larger or no std is
published) of the paper's; every rule on the same side of BP as in the paper; the gap (rule − BP) within 1.5×
of the published gap.
"""

import dataclasses
import math

import numpy as np

from bpfree import results
from bpfree.records import FINISHED

OBJECTIVE = "val_error_rate"
TEST_METRIC = "test_error_rate"
BP_TOLERANCE = 0.3  # points
GAP_RATIO = 1.5


@dataclasses.dataclass
class Row:
    """One rule on one dataset: ours (None where it has not run) beside the paper's."""

    algorithm: str
    published: tuple = None  # (error %, std % or None)
    test: list = dataclasses.field(default_factory=list)  # test error % per execution at its chosen epoch (error_rate is in percent)
    validation: float = math.nan  # mean best validation error % of the chosen configuration
    lr: float = None
    epochs: list = dataclasses.field(default_factory=list)  # the chosen epochs (1-based)
    runs: int = 0  # executions of the chosen configuration with a score
    complete: bool = False  # every execution of every configuration of this rule finished (completed or diverged)
    executions: int = 0  # of every configuration of this rule
    diverged: int = 0  # of those, how many diverged (their scores are their best epochs before it)

    @property
    def mean(self):
        return float(np.mean(self.test)) if self.test else math.nan

    @property
    def std(self):
        return float(np.std(self.test, ddof=1)) if len(self.test) > 1 else math.nan


def dataset_of(project):
    """The dataset a search's project directory belongs to ("fmnist-classification-val_error_rate" → "fmnist")."""
    return project.split("-classification")[0]


def rows(frame, dataset, published, algorithms):
    """[Row] for `dataset` of a `results.load` frame, one per algorithm (ours, then the paper's order)."""
    frame = frame[frame["project"].map(dataset_of) == dataset]
    out = []
    for algorithm in algorithms:
        row = Row(algorithm, published.get(algorithm))
        mine = frame[frame["algorithm"] == algorithm] if "algorithm" in frame else frame.iloc[:0]
        if not mine.empty and OBJECTIVE in mine and TEST_METRIC in mine:
            _choose(row, mine)
        out.append(row)
    return out


def _choose(row, frame):
    per = results.execution_scores(frame, OBJECTIVE, "best")
    row.complete = bool(per["status"].isin(FINISHED).all())
    row.executions, row.diverged = len(per), int((per["status"] == "diverged").sum())
    per = per[np.isfinite(per["score"])]
    if per.empty:
        return
    means = per.groupby("trial_id", sort=True)["score"].mean()
    chosen = means.idxmin()
    mine = per[per["trial_id"] == chosen]
    row.lr = float(mine["lr"].iloc[0])
    row.validation = float(means[chosen])
    epochs = frame[frame["trial_id"] == chosen].set_index(["execution", "epoch"])[TEST_METRIC]
    for execution, epoch in zip(mine["execution"], mine["from_epoch"]):
        value = epochs.get((execution, int(epoch) - 1), math.nan)
        if math.isfinite(value):
            row.test.append(float(value))
            row.epochs.append(int(epoch))
    row.runs = len(row.test)


def targets(table_rows):
    """{algorithm: {target: (met, words)}} for one dataset's rows (BP's own, ordering, gap size)."""
    by = {r.algorithm: r for r in table_rows}
    bp = by.get("bp")
    out = {}
    if bp is None or not bp.test:
        return out
    if bp.published:
        value, std = bp.published
        tolerance = max(BP_TOLERANCE, 2 * std) if std else BP_TOLERANCE
        off = bp.mean - value
        out["bp"] = {"bp": (abs(off) <= tolerance, f"{off:+.2f} points from the paper (tolerance ±{tolerance:.2f})")}
    for r in table_rows:
        if r.algorithm == "bp" or not r.test or not r.published or not bp.published:
            continue
        ours, theirs = r.mean - bp.mean, r.published[0] - bp.published[0]
        checks = {}
        if theirs == 0:
            checks["order"] = (None, f"level with BP in the paper; ours {ours:+.2f}")
        else:
            checks["order"] = ((ours > 0) == (theirs > 0), f"{'worse' if ours > 0 else 'better'} than BP "
                               f"({'worse' if theirs > 0 else 'better'} in the paper)")
            ratio = ours / theirs
            checks["gap"] = (1 / GAP_RATIO <= ratio <= GAP_RATIO,
                             f"gap {ours:+.2f} vs the paper's {theirs:+.2f} ({ratio:.2f}×)")
        out[r.algorithm] = checks
    return out
