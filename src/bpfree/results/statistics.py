"""Significance of each best configuration against a reference rule's (bp), over executions (seeds).

Welch's t-test (unequal variances) and the Mann–Whitney U test, both two-sided and unpaired, on the
per-execution scores and test metrics. scipy is imported inside `compare`, so that reading records and
printing tables never loads it.
"""

import numpy as np
import pandas as pd

from bpfree.results import tables

MIN_EXECUTIONS = 2  # per side, for a test across seeds
COLUMNS = ["configuration", "metric", "Δ mean", "n", "Welch's t (p)", "Mann–Whitney U (p)"]


def compare(ours, theirs):
    """[Δ mean, "n vs m", Welch's "t = …, p = …", Mann–Whitney "U = …, p = …"] of two samples (NaN out)."""
    import scipy.stats  # here, not at the top: only a report loads scipy (the module docstring)

    ours, theirs = ours[np.isfinite(ours)], theirs[np.isfinite(theirs)]
    n = f"{len(ours)} vs {len(theirs)}"
    if not len(ours) or not len(theirs):
        return [tables.MISSING, n, "no values", tables.MISSING]
    delta = float(np.mean(ours) - np.mean(theirs))
    shown = f"{'+' if delta > 0 else ''}{tables.number(delta)}"
    if min(len(ours), len(theirs)) < MIN_EXECUTIONS:
        return [shown, n, f"not tested: a single execution (needs ≥ {MIN_EXECUTIONS} each)", tables.MISSING]
    mann_whitney = scipy.stats.mannwhitneyu(ours, theirs, alternative="two-sided")
    u = f"U = {tables.number(mann_whitney.statistic, 3)}, p = {tables.number(mann_whitney.pvalue, 2)}"
    if np.ptp(ours) == 0 and np.ptp(theirs) == 0:
        return [shown, n, "undefined: no variance on either side", u]
    welch = scipy.stats.ttest_ind(ours, theirs, equal_var=False)
    t = f"t = {tables.number(welch.statistic, 3)}, p = {tables.number(welch.pvalue, 2)}"
    return [shown, n, t, u]


def against_reference(table, per_execution, reference, matched_on):
    """A DataFrame of text (`COLUMNS`): every row of `table` (a `best` result grouped by rule first) that is
    not `reference`, compared per metric (the score, then each test metric) with the reference's row that
    has the same `matched_on` columns."""
    by = table.attrs["by"]
    rule, objective = by[0], table.attrs["objective"]
    references = table[table[rule] == reference]
    tests = [c for c in per_execution.columns if c.startswith("test.") and per_execution[c].notna().any()]
    rows = []
    for _, row in table[table[rule] != reference].iterrows():
        matching = references
        for column in matched_on:
            matching = matching[matching[column].map(tables.cell) == tables.cell(row[column])]
        label = tables.group_label(row, by)
        if matching.empty:
            rows.append([label, objective, tables.MISSING, tables.MISSING,
                         f"no {reference} with the same {', '.join(matched_on)}", tables.MISSING])
            continue
        ours, theirs = _executions(per_execution, row), _executions(per_execution, matching.iloc[0])
        for metric, column in [(f"{objective} ({row['scored_by']})", "score")] + [
                (f"test {c[len('test.'):]}", c) for c in tests]:
            rows.append([label, metric, *compare(ours[column].to_numpy(float), theirs[column].to_numpy(float))])
    return pd.DataFrame(rows, columns=COLUMNS)


def _executions(per_execution, row):
    return per_execution[(per_execution["project"] == row["project"]) & (per_execution["trial_id"] == row["trial_id"])]
