"""Each best configuration against a reference rule's (bp): paired tests over the seeds they share.

**Pairs.** Execution k of every trial of a search runs with seed + k (`bpfree.seeds.execution`), whatever the
rule, so an execution of a rule and the reference's execution with the same recorded seed share their seeds
(data order, initial weights): they pair. Pairs are formed on the ``seed`` column, never on row order; an
execution whose seed the other side lacks (or that has no finite value of the metric, or no seed) is left out
and counted.

**Tests**, per compared configuration and metric, on the paired differences d = ours − reference's (lower is
better, so d < 0 favours ours):

- the mean of d and its 95% confidence interval, mean ± t(0.975, n − 1) · sd / √n (t-based);
- the paired t-test, two-sided (`scipy.stats.ttest_rel`); undefined when every difference is the same;
- the Wilcoxon signed-rank test, two-sided, with an exact p. Zero differences are dropped (Wilcoxon's own
  treatment, scipy's zero_method="wilcox": a pair with equal scores says nothing about which rule is better),
  so its n is the number of nonzero differences. Without ties among the |d|, the p comes from the exact null
  distribution (``scipy.stats.wilcoxon(method="exact")``). With ties, scipy's "exact" would use the untied
  distribution (not exact then) and its "auto" a permutation test or the normal approximation, so the p is
  the exact conditional one instead (`exact_tied_p`): the distribution of the mid-rank statistic over all
  2^n equally likely sign assignments. No approximate p is ever shown. Scores are recorded from float32, so
  differences within `TIE_TOLERANCE` of the scores' magnitude count as equal (a tie) or as zero.
- The smallest two-sided p the Wilcoxon test can reach with n nonzero differences is 2 / 2^n
  (`wilcoxon_floor`): 0.25 with 3 seeds, 0.0625 with 5; below 0.05 needs 6.
- Holm's step-down correction across the configurations compared with the reference, per metric and per test
  (`holm`), shown beside the raw p.

**Which executions.** Confirmation executions (``record["confirmation"]``: after selection, a chosen
configuration re-run with fresh seeds) took no part in choosing it: where the records have them, only they are
compared (`uses_confirmation`), those of a configuration being the confirmation executions in its project with
the same hparams. Otherwise the compared executions are the ones whose validation scores chose the
configuration (the report says so). The metrics are the test split's (`tested_metrics`), never the validation
score that did the choosing; only where nothing was chosen (every group ran one configuration, e.g. experiment
records) is the objective's score itself compared.

scipy is imported inside the functions that test, so that reading records and printing tables never loads it.
"""

import math

import numpy as np
import pandas as pd

from bpfree.results import tables

CONFIDENCE = 0.95
MIN_PAIRS = 2  # for the paired t-test and its interval
TIE_TOLERANCE = 1e-6  # relative to the largest |score| of the pairs: float32 records round at about 6e-8
KEYS = ["project", "trial_id", "execution"]

# One row per (configuration, metric) of `against_reference`: numbers, NaN where there are none.
NUMBERS = ["configuration", "metric", "pairs", "left_ours", "left_theirs", "mean_ours", "mean_theirs",
           "delta", "ci_low", "ci_high", "t", "p_t", "holm_t", "wilcoxon_n", "zeros", "ties", "w", "p_w",
           "holm_w", "note_t", "note_w"]


def wilcoxon_floor(n):
    """The smallest two-sided p of an exact Wilcoxon signed-rank test with n nonzero differences: 2 / 2^n
    (every difference of one sign, the most extreme of the 2^n equally likely sign assignments, counted on
    both sides); 1 for n ≤ 1."""
    return min(1.0, 2.0 / 2 ** int(n))


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m p-values becomes
    max over j ≤ i of min(1, (m − j + 1) · p_(j)). NaN (a test not run) stays NaN and is not counted in m.

    Written here because no installed library has it: statsmodels (``multipletests``) is not a dependency
    and scipy offers Benjamini–Hochberg / Benjamini–Yekutieli only (``false_discovery_control``)."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def pair(ours, theirs, column, on="seed"):
    """(x, y, left_ours, left_theirs): the finite values of `column` of two DataFrames of executions, paired
    on `on` (sorted by it), and how many executions of each side have no partner. An execution without a
    finite value or without a seed has none; a seed repeated on one side pairs its first execution (by
    project, trial_id, execution) and leaves the others out."""
    sides = []
    for frame in (ours, theirs):
        keep = frame[np.isfinite(frame[column].to_numpy(float)) & frame[on].notna()]
        keep = keep.sort_values([c for c in KEYS if c in keep], kind="stable").drop_duplicates(on)
        sides.append(pd.Series(keep[column].to_numpy(float), index=keep[on].to_numpy(float)))
    finite = [int(np.isfinite(f[column].to_numpy(float)).sum()) for f in (ours, theirs)]
    shared = sides[0].index.intersection(sides[1].index).sort_values()
    x, y = sides[0].loc[shared].to_numpy(float), sides[1].loc[shared].to_numpy(float)
    return x, y, finite[0] - len(shared), finite[1] - len(shared)


def paired_t(x, y, confidence=CONFIDENCE):
    """{delta, ci_low, ci_high, t, p_t, note_t} of paired samples x, y (d = x − y); NaN and a note where a
    number is undefined."""
    import scipy.stats  # here, not at the top: only a report loads scipy (the module docstring)

    d = np.asarray(x, float) - np.asarray(y, float)
    out = dict(delta=float(np.mean(d)) if len(d) else math.nan, ci_low=math.nan, ci_high=math.nan, t=math.nan,
               p_t=math.nan, note_t="")
    if len(d) < MIN_PAIRS:
        out["note_t"] = f"not tested: {len(d)} pair{'' if len(d) == 1 else 's'} (needs ≥ {MIN_PAIRS})"
        return out
    if np.ptp(d) <= _tolerance(x, y):
        out["note_t"] = "undefined: every difference is the same"
        out["ci_low"] = out["ci_high"] = out["delta"]
        return out
    result = scipy.stats.ttest_rel(x, y)
    interval = result.confidence_interval(confidence)
    out.update(t=float(result.statistic), p_t=float(result.pvalue), ci_low=float(interval.low),
               ci_high=float(interval.high))
    return out


def wilcoxon(x, y):
    """{wilcoxon_n, zeros, ties, w, p_w, note_w}: the two-sided Wilcoxon signed-rank test of paired samples
    with an exact p (the module docstring: zeros dropped; with ties, `exact_tied_p`); NaN and a note where
    there is nothing to test."""
    import scipy.stats  # here, not at the top: only a report loads scipy (the module docstring)

    d = _snap(np.asarray(x, float) - np.asarray(y, float), _tolerance(x, y))
    nonzero = d[d != 0]
    n = len(nonzero)
    ties = bool(n and len(np.unique(np.abs(nonzero))) < n)
    out = dict(wilcoxon_n=n, zeros=len(d) - n, ties=ties, w=math.nan, p_w=math.nan, note_w="")
    if not n:
        out["note_w"] = "not tested: no nonzero difference" if len(d) else "not tested: no pairs"
        return out
    if ties:
        out.update(zip(("w", "p_w"), exact_tied_p(nonzero)))
    else:
        result = scipy.stats.wilcoxon(nonzero, zero_method="wilcox", method="exact", alternative="two-sided")
        out.update(w=float(result.statistic), p_w=float(result.pvalue))
    return out


def exact_tied_p(d):
    """(W, p): the signed-rank statistic min(R+, R−) of nonzero differences `d` with mid-ranks for tied |d|,
    and its exact two-sided p conditional on those ranks, 2 · min(P(R+ ≤ observed), P(R+ ≥ observed)) (at
    most 1) over the 2^n equally likely sign assignments. The distribution is built by convolution, one rank
    at a time (doubled, mid-ranks are integers): exact, and quick for any n, unlike enumerating 2^n
    assignments."""
    import scipy.stats  # here, not at the top: only a report loads scipy (the module docstring)

    d = np.asarray(d, float)
    doubled = np.rint(2 * scipy.stats.rankdata(np.abs(d))).astype(int)
    distribution = np.zeros(int(doubled.sum()) + 1)
    distribution[0] = 1.0
    for rank in doubled:  # R+ gains the rank or not, each with probability 1/2
        distribution = 0.5 * (distribution + np.concatenate([np.zeros(rank), distribution[:-rank]]))
    observed = int(doubled[d > 0].sum())
    p = 2 * min(distribution[:observed + 1].sum(), distribution[observed:].sum())
    return min(observed, int(doubled.sum()) - observed) / 2, float(min(1.0, p))


def uses_confirmation(per_execution):
    """Whether the executions include confirmation executions (then only they are compared)."""
    return bool(_confirmation(per_execution).any())


def compared_executions(per_execution, row, hparams, confirmation):
    """The executions of a best row's configuration that are compared: its confirmation executions (same
    project and hparams) when `confirmation`, else the executions of its trial that are not confirmations."""
    flags = _confirmation(per_execution)
    same = per_execution["project"] == row["project"]
    if not confirmation:
        return per_execution[same & (per_execution["trial_id"] == row["trial_id"]) & ~flags]
    chosen = same & flags
    for column in hparams:
        if column in per_execution and column in row:
            chosen &= per_execution[column].map(lambda v, want=row[column]: _same(v, want))
    return per_execution[chosen]


def tested_metrics(table, per_execution, confirmation):
    """[(label, column)]: the test metrics with a value among the compared executions; where there are none
    and no configuration was chosen among several (every group of the table ran one trial), the objective's
    score; [] otherwise (the validation score that chose a configuration is never tested)."""
    flags = _confirmation(per_execution)
    used = per_execution[flags if confirmation else ~flags]
    tests = [(f"test {c[len('test.'):]}", c) for c in per_execution.columns
             if c.startswith("test.") and used[c].notna().any()]
    if tests or not nothing_chosen(table, per_execution[~flags]):
        return tests
    scored = ", ".join(sorted(set(table["scored_by"])))
    return [(f"{table.attrs['objective']} ({scored})", "score")]


def nothing_chosen(table, per_execution):
    """Whether every group of `table` (a `best` table) ran a single trial, so that no score chose among
    configurations."""
    by = [c for c in table.attrs["by"] if c in per_execution]
    trials = per_execution.drop_duplicates(["project", "trial_id"])
    return bool(by) and len(trials) > 0 and int(trials.groupby(by, dropna=False).size().max()) == 1


def against_reference(table, per_execution, reference, matched_on, metrics=None, confirmation=None):
    """A DataFrame (`NUMBERS`), one row per configuration of `table` (a `best` result grouped by rule first)
    other than `reference`, and per metric ([(label, column)], default `tested_metrics`): its executions
    paired by seed with those of the reference row that has the same `matched_on` columns, the paired t-test,
    the Wilcoxon signed-rank test, and each one's Holm-adjusted p across the configurations (per metric)."""
    by = table.attrs["by"]
    rule, hparams = by[0], table.attrs.get("hparams", [])
    confirmation = uses_confirmation(per_execution) if confirmation is None else confirmation
    metrics = tested_metrics(table, per_execution, confirmation) if metrics is None else metrics
    references = table[table[rule] == reference]
    rows = []
    for _, row in table[table[rule] != reference].iterrows():
        matching = references
        for column in matched_on:
            matching = matching[matching[column].map(tables.cell) == tables.cell(row[column])]
        label = tables.group_label(row, by)
        if matching.empty:
            for metric, _ in metrics:
                rows.append(dict(configuration=label, metric=metric, pairs=0,
                                 note_t=f"no {reference} with the same {', '.join(matched_on)}", note_w=""))
            continue
        ours = compared_executions(per_execution, row, hparams, confirmation)
        theirs = compared_executions(per_execution, matching.iloc[0], hparams, confirmation)
        for metric, column in metrics:
            x, y, left_ours, left_theirs = pair(ours, theirs, column)
            rows.append(dict(configuration=label, metric=metric, pairs=len(x), left_ours=left_ours,
                             left_theirs=left_theirs, mean_ours=_mean(x), mean_theirs=_mean(y),
                             **paired_t(x, y), **wilcoxon(x, y)))
    compared = pd.DataFrame(rows, columns=NUMBERS)
    compared[["note_t", "note_w"]] = compared[["note_t", "note_w"]].fillna("")
    for metric in compared["metric"].unique():
        chosen = compared["metric"] == metric
        compared.loc[chosen, "holm_t"] = holm(compared.loc[chosen, "p_t"])
        compared.loc[chosen, "holm_w"] = holm(compared.loc[chosen, "p_w"])
    return compared


def shown(compared, reference):
    """`against_reference`'s numbers as a DataFrame of text for the report."""
    rows = []
    for _, r in compared.iterrows():
        pairs = str(int(r["pairs"]))
        if (r["left_ours"] or 0) > 0 or (r["left_theirs"] or 0) > 0:
            pairs += f" (unpaired: {int(r['left_ours'])} here, {int(r['left_theirs'])} {reference})"
        interval = (f" [{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"
                    if np.isfinite(r["ci_low"]) and r["ci_low"] != r["ci_high"] else "")
        delta = f"{_signed(r['delta'])}{interval}" if np.isfinite(r["delta"]) else tables.MISSING
        t = (f"t = {tables.number(r['t'], 3)}, p = {tables.number(r['p_t'], 3)}" if np.isfinite(r["p_t"])
             else r["note_t"] or tables.MISSING)
        w = tables.MISSING
        if np.isfinite(r["p_w"]):
            notes = []
            if r["zeros"]:
                notes.append(f"n = {int(r['wilcoxon_n'])}: {int(r['zeros'])} zero difference(s) dropped")
            if r["ties"]:
                notes.append(f"ties: exact over all 2^{int(r['wilcoxon_n'])} signs")
            w = (f"W = {tables.number(r['w'], 4)}, p = {tables.number(r['p_w'], 3)}"
                 + (f" ({'; '.join(notes)})" if notes else ""))
        elif r["note_w"]:
            w = r["note_w"]
        rows.append([r["configuration"], r["metric"], pairs, delta, t, tables.number(r["holm_t"], 3), w,
                     tables.number(r["holm_w"], 3)])
    return pd.DataFrame(rows, columns=["configuration", "metric", "pairs", f"Δ mean [{CONFIDENCE:.0%} CI]",
                                       "paired t", "Holm p (t)", "Wilcoxon signed-rank (exact p)",
                                       "Holm p (W)"])


def confirmation_summary(table, per_execution, metrics):
    """A DataFrame of text: per configuration of `table`, how many confirmation executions it has and each
    metric's mean ± std over them (those with a finite value)."""
    by, hparams = table.attrs["by"], table.attrs.get("hparams", [])
    rows = []
    for _, row in table.iterrows():
        runs = compared_executions(per_execution, row, hparams, True)
        cells = [tables.group_label(row, by), str(len(runs))]
        for _, column in metrics:
            values = runs[column].to_numpy(float)
            values = values[np.isfinite(values)]
            cells.append(tables.mean_std(np.mean(values), np.std(values, ddof=1) if len(values) > 1 else math.nan)
                         if len(values) else tables.MISSING)
        rows.append(cells)
    return pd.DataFrame(rows, columns=["configuration", "n"] + [label for label, _ in metrics])


def _confirmation(per_execution):
    if "confirmation" not in per_execution:
        return pd.Series(False, index=per_execution.index)
    return per_execution["confirmation"].fillna(False).astype(bool)


def _tolerance(x, y):
    scale = max((float(np.max(np.abs(v))) for v in (x, y) if len(v)), default=0.0)
    return TIE_TOLERANCE * scale


def _snap(d, tolerance):
    """`d` with |values| within `tolerance` of zero set to zero, and |values| within `tolerance` of the
    previous (sorted) one set equal to it (sign kept): equal up to float32 rounding counts as equal."""
    d = np.where(np.abs(d) <= tolerance, 0.0, d)
    magnitude = np.abs(d)
    order = np.argsort(magnitude, kind="stable")
    snapped = magnitude.copy()
    for previous, index in zip(order[:-1], order[1:]):
        if magnitude[index] - snapped[previous] <= tolerance:
            snapped[index] = snapped[previous]
    return np.sign(d) * snapped


def _same(a, b):
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    return all(missing) if any(missing) else a == b


def _mean(values):
    return float(np.mean(values)) if len(values) else math.nan


def _signed(value):
    return f"{'+' if value > 0 else ''}{tables.number(value)}"
