"""A one-command comparison report of an experiment directory, in Markdown, figures beside it.

    python -m bpfree.results data/quickstart --report report.md
    results.report.write(results.load("data/quickstart"), "report.md")

It holds the best configuration per rule (by the searches' objective and score, `bpfree.results.best`)
with its validation and test mean ± std over executions, the learning curves of those configurations
(``report_curves.png``), the objective against the learning rate per rule (``report_lr.png``), the
trackers' alignment curves where the records have them
(``report_bp_cosine.png``, ``report_weight_alignment.png``), and a significance test of each rule against
bp over its executions (seeds): Welch's t-test (unequal variances) and the Mann–Whitney U test, both
two-sided and unpaired, on the per-execution scores (`bpfree.results.statistics`).
"""

import os

from bpfree import io
from bpfree.results import plots, statistics, tables
from bpfree.results.frame import hparam_columns, rule_column
from bpfree.results.scores import best, execution_scores

REFERENCE = "bp"


def check_path(path):
    """`path` if it names a Markdown file (.md); a ValueError naming it otherwise."""
    if os.path.splitext(path)[1].lower() != ".md":
        raise ValueError(f"Invalid --report {path!r}: a Markdown file name ending in .md (figures are written "
                         "beside it).")
    return path


def write(frame, path, objective=None, by=None, score=None, reference=REFERENCE, source=None):
    """Writes the report of `frame` (a `load` frame) to `path` and its figures beside it; returns the paths
    written (the report first)."""
    check_path(path)
    table = best(frame, objective, by=by or rule_column(frame), score=score)
    per_execution = execution_scores(frame, table.attrs["objective"], score)
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
    curves = plots.plot_curves(frame, objective, path=f"{stem}_curves.png", table=table)
    lines = ["## Learning curves", "", f"{objective} per epoch, mean ± std over executions.", "",
             f"![learning curves]({os.path.basename(curves)})", ""]
    figures = [curves]
    if "lr" in hparam_columns(frame):  # the objective against the learning rate: where the grid's edges show
        lr_figure = plots.plot_lr(frame, objective, path=f"{stem}_lr.png", score=table.attrs.get("score"))
        edges = plots.lr_at_the_edge(plots.lr_curves(frame, objective, table.attrs.get("score")))
        lines += ["## Learning rate", "", f"{objective} of the best configuration at each learning rate, mean over "
                  "executions (band: the lowest and highest execution), a line per rule; ringed: each rule's "
                  "lowest.", "", f"![objective against the learning rate]({os.path.basename(lr_figure)})", ""]
        if edges:
            lines += ["Best at an end of the grid (a better learning rate may lie beyond it): " + ", ".join(
                f"{rule} ({end} lr)" for rule, end in edges.items()) + ".", ""]
        figures.append(lr_figure)
    lines += ["## Alignment", ""]
    alignment = plots.plot_alignment(frame, table, stem)
    for name, figure in alignment.items():
        lines += [f"{plots.ALIGNMENT[name]}, mean over executions.", "", f"![{name}]({os.path.basename(figure)})",
                  ""]
    if not alignment:
        lines += ["No tracker metrics in these records (a search run with `--trackers bp_cosine,weight_alignment` "
                  "records them).", ""]
    return lines, [*figures, *alignment.values()]


def _score_words(scored):
    words = {"final": "the last epoch", "best": "the best epoch"}
    return "; ".join(words.get(s, f"the mean of the last {s[4:]} epochs") for s in scored) or "—"


def significance_section(table, per_execution, reference=REFERENCE):
    """The Markdown lines comparing each best configuration with the reference rule's (bp)."""
    by = table.attrs["by"]
    lines = [f"## Compared with {reference}", ""]
    if not by:
        return lines + ["Not grouped by rule: nothing to compare.", ""]
    references = table[table[by[0]] == reference]
    if references.empty:
        return lines + [f"No {reference} configuration in these records: nothing to compare against.", ""]
    others = [c for c in by[1:] if references[c].notna().any()]  # bp has no rule hparams: not matched on
    same = f" with the same {', '.join(others)}" if others else ""
    lines += [f"Welch's t-test (unequal variances) and the Mann–Whitney U test, both two-sided and unpaired, "
              f"of each configuration's per-execution scores (one per seed) against those of {reference}'s best "
              f"configuration{same}. n: executions with a finite value, the configuration's vs {reference}'s; a "
              f"test needs ≥ {statistics.MIN_EXECUTIONS} on each side. Δ mean: the configuration's mean minus "
              f"{reference}'s (lower is better). With few executions Mann–Whitney cannot give a small p: its "
              "smallest two-sided p for n vs m executions is 2 / C(n + m, n), 0.1 for 3 vs 3 and 0.0079 for "
              "5 vs 5.", ""]
    compared = statistics.against_reference(table, per_execution, reference, others)
    return lines + [tables.markdown(compared), ""]
