"""A one-command comparison report of an experiment directory, in Markdown, figures beside it.

    python -m bpfree.results data/quickstart --report report.md
    report.write(results.load("data/quickstart"), "report.md")

It holds the best configuration per rule (by the searches' objective and score, `bpfree.results.best`)
with its validation and test mean ± std over executions, the learning curves of those configurations
(``report_curves.png``), the trackers' alignment curves where the records have them
(``report_bp_cosine.png``, ``report_weight_alignment.png``), and a significance test of each rule against
bp over its executions (seeds): Welch's t-test (unequal variances) and the Mann–Whitney U test, both
two-sided and unpaired, on the per-execution scores. Imports no TensorFlow.
"""

import os
import re

import numpy as np

from bpfree import io, results, tables

REFERENCE = "bp"
# The trackers' alignment metrics as `bpfree.trackers.metric_names` names them: "<tracker>_<layer>".
ALIGNMENT = {"bp_cosine": "cos(ΔW rule, ΔW bp) per layer", "weight_alignment": "cos(W_l, its feedback target)"}
_ALIGNMENT_METRIC = re.compile(r"(" + "|".join(ALIGNMENT) + r")_([0-9]+)")
MIN_EXECUTIONS = 2  # per side, for a test across seeds


def check_path(path):
    """`path` if it names a Markdown file (.md); a ValueError naming it otherwise."""
    if os.path.splitext(path)[1].lower() != ".md":
        raise ValueError(f"Invalid --report {path!r}: a Markdown file name ending in .md (figures are written "
                         "beside it).")
    return path


def write(frame, path, objective=None, by=None, score=None, reference=REFERENCE, source=None):
    """Writes the report of `frame` (a `results.load` frame) to `path` and its figures beside it; returns
    the paths written (the report first)."""
    check_path(path)
    table = results.best(frame, objective, by=by or results.rule_column(frame), score=score)
    per_execution = results.execution_scores(frame, table.attrs["objective"], score)
    lines = header(frame, table, per_execution, source) + best_section(table)
    written = [path]
    if len(table):
        figure_lines, figures = figures_section(frame, table, os.path.splitext(path)[0])
        written += figures
        lines += figure_lines + significance_section(table, per_execution, reference)
    text = "\n".join(lines).rstrip() + "\n"

    def write_text(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    io.write_atomic(path, write_text, ".md")
    return written


def header(frame, table, per_execution, source):
    """The title and what was scored how."""
    objective = table.attrs["objective"]
    scored = sorted(set(table["scored_by"]))
    trials = frame.drop_duplicates(["project", "trial_id"]).shape[0]
    percent = "; error rates in %" if "error_rate" in objective else ""
    return [f"# Results: {source or 'records'}", "",
            f"{len(per_execution)} executions of {trials} trials in {frame['project'].nunique()} project(s). "
            f"Objective **{objective}** (lower is better{percent}), an execution scored by its "
            f"**{', '.join(scored) or tables.MISSING}** ({_score_words(scored)}); a configuration's score is the "
            "mean ± sample std over its executions (seeds) with a finite score, n of them.", ""]


def best_section(table):
    """The best configuration per group, its scores and test scores."""
    by = table.attrs["by"]
    lines = [f"## Best configuration per {', '.join(by) or 'trial'}", ""]
    rows, shared = tables.summary(table)
    if rows.empty:
        return lines + ["No configuration has a finite score.", ""]
    lines += [tables.markdown(rows), ""]
    if shared:
        lines += ["Every row: " + ", ".join(f"{k} `{v}`" for k, v in shared.items()) + ".", ""]
    tests = ("test: the test split's metrics at the end of each execution, mean ± std over executions."
             if any(c.startswith("test ") for c in rows.columns) else
             "No test scores in these records (an execution records its test-split metrics when it finishes; "
             "older records do not have them).")
    return lines + [f"score: the rule @ the 1-based epochs the executions' scores come from, of how many ran. "
                    f"{tests}", ""]


def figures_section(frame, table, stem):
    """(lines, figure paths): the learning curves and the alignment curves, drawn and linked."""
    objective = table.attrs["objective"]
    curves = results.plot_curves(frame, objective, path=f"{stem}_curves.png", table=table)
    lines = ["## Learning curves", "", f"{objective} per epoch, mean ± std over executions.", "",
             f"![learning curves]({os.path.basename(curves)})", "", "## Alignment", ""]
    alignment = plot_alignment(frame, table, stem)
    for name, figure in alignment.items():
        lines += [f"{ALIGNMENT[name]}, mean over executions.", "", f"![{name}]({os.path.basename(figure)})", ""]
    if not alignment:
        lines += ["No tracker metrics in these records (a search run with `--trackers bp_cosine,weight_alignment` "
                  "records them).", ""]
    return lines, [curves, *alignment.values()]


def _score_words(scored):
    words = {"final": "the last epoch", "best": "the best epoch"}
    return "; ".join(words.get(s, f"the mean of the last {s[4:]} epochs") for s in scored) or "—"


def _alignment_metrics(frame, table):
    """[(tracker, layer, column)] logged for at least one of the table's trials."""
    chosen = frame.merge(table[["project", "trial_id"]], on=["project", "trial_id"])
    found = []
    for column in results.metric_columns(frame):
        match = _ALIGNMENT_METRIC.fullmatch(column)
        if match and chosen[column].notna().any():
            found.append((match.group(1), int(match.group(2)), column))
    return sorted(found)


def plot_alignment(frame, table, stem):
    """{tracker: figure path}: one figure per alignment tracker the table's trials have records of, a line
    per trial and layer, mean over executions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = _alignment_metrics(frame, table)
    paths = {}
    for name in [n for n in ALIGNMENT if any(m[0] == n for m in metrics)]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, (_, row) in enumerate(table.iterrows()):
            for _, layer, column in [m for m in metrics if m[0] == name]:
                curve = results.curves(frame, column, [row["trial_id"]], row["project"])[row["trial_id"]]
                if curve["mean"].notna().any():
                    ax.plot(curve["epoch"] + 1, curve["mean"], color=f"C{index % 10}",
                            linestyle=("-", "--", ":", "-.")[(layer - 1) % 4],
                            label=f"{results.group_label(row, table.attrs['by'])} layer {layer}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(ALIGNMENT[name])
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths[name] = results.save_figure(fig, f"{stem}_{name}.png")
    return paths


def significance_section(table, per_execution, reference=REFERENCE):
    """The Markdown lines comparing each best configuration with the reference rule's (bp)."""
    by = table.attrs["by"]
    lines = [f"## Compared with {reference}", ""]
    if not by:
        return lines + ["Not grouped by rule: nothing to compare.", ""]
    rule = by[0]
    references = table[table[rule] == reference]
    if references.empty:
        return lines + [f"No {reference} configuration in these records: nothing to compare against.", ""]
    objective = table.attrs["objective"]
    tests = [c for c in per_execution.columns if c.startswith("test.") and per_execution[c].notna().any()]
    others = [c for c in by[1:] if references[c].notna().any()]  # bp has no rule hparams: not matched on
    same = f" with the same {', '.join(others)}" if others else ""
    lines += [f"Welch's t-test (unequal variances) and the Mann–Whitney U test, both two-sided and unpaired, "
              f"of each configuration's per-execution scores (one per seed) against those of {reference}'s best "
              f"configuration{same}. n: executions with a finite value, the configuration's vs {reference}'s; a "
              f"test needs ≥ {MIN_EXECUTIONS} on each side. Δ mean: the configuration's mean minus {reference}'s "
              "(lower is better). With few executions Mann–Whitney cannot give a small p: its smallest two-sided "
              "p for n vs m executions is 2 / C(n + m, n), 0.1 for 3 vs 3 and 0.0079 for 5 vs 5.", ""]
    header = ["configuration", "metric", "Δ mean", "n", "Welch's t (p)", "Mann–Whitney U (p)"]
    rows = []
    for _, row in table[table[rule] != reference].iterrows():
        matching = references
        for column in others:
            matching = matching[matching[column].map(tables.cell) == tables.cell(row[column])]
        label = results.group_label(row, by)
        if matching.empty:
            rows.append([label, objective, tables.MISSING, tables.MISSING,
                         f"no {reference} with the same {', '.join(others)}", tables.MISSING])
            continue
        ours, theirs = _executions(per_execution, row), _executions(per_execution, matching.iloc[0])
        for metric, column in [(f"{objective} ({row['scored_by']})", "score")] + [
                (f"test {c[len('test.'):]}", c) for c in tests]:
            rows.append([label, metric, *compare(ours[column].to_numpy(float), theirs[column].to_numpy(float))])
    return lines + [tables.markdown(_frame(header, rows)), ""]


def compare(ours, theirs):
    """[Δ mean, "n vs m", Welch's "t = …, p = …", Mann–Whitney "U = …, p = …"] of two samples (NaN out)."""
    import scipy.stats

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


def _executions(per_execution, row):
    return per_execution[(per_execution["project"] == row["project"]) & (per_execution["trial_id"] == row["trial_id"])]


def _frame(header, rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=header)
