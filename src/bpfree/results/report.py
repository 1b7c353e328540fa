"""A one-command comparison report of an experiment directory, in Markdown, figures beside it.

    python -m bpfree.results data/quickstart --report report.md
    results.report.write(results.load("data/quickstart"), "report.md")

It holds the best configuration per rule (by the searches' objective and score, `bpfree.results.best`, over
the executions of the search; confirmation executions take no part) with its validation and test mean ± std
over executions, the learning curves of those configurations (``report_curves.png``), the objective against
the learning rate per rule (``report_lr.png``), the trackers' alignment curves where the records have them (``report_bp_cosine.png``, ``report_weight_alignment.png``), and each rule
compared with bp on the test split (`bpfree.results.statistics`): executions paired by seed, the mean paired
difference with its 95% confidence interval, the paired t-test and the exact Wilcoxon signed-rank test
(two-sided), each with Holm's correction across the rules compared with bp, and the smallest p the
Wilcoxon test can reach with that many pairs. Where the records hold confirmation executions (each chosen
configuration re-run with fresh seeds after the selection), only they are compared, and their test mean ± std
is shown; otherwise the report says that the test scores compared come from the executions whose validation
scores chose the configurations. The validation score that chose a configuration is never tested.
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
    selection = frame[~frame["confirmation"].fillna(False).astype(bool)] if "confirmation" in frame else frame
    table = best(selection, objective, by=by or rule_column(frame), score=score)
    per_execution = execution_scores(frame, table.attrs["objective"], score)
    if "confirmation" in frame:
        keys = ["project", "trial_id", "execution"]
        per_execution = per_execution.join(frame.drop_duplicates(keys).set_index(keys)["confirmation"], on=keys)
    lines = header(frame, table, per_execution, source) + best_section(table)
    written = [path]
    if len(table):
        figure_lines, figures = figures_section(selection, table, os.path.splitext(path)[0])
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
    confirmations = int(per_execution["confirmation"].sum()) if "confirmation" in per_execution else 0
    confirming = (f" ({confirmations} of them confirmation executions: chosen configurations re-run with fresh "
                  "seeds after the selection, which the best configurations below do not count)"
                  if confirmations else "")
    return [f"# Results: {source or 'records'}", "",
            f"{len(per_execution)} executions{confirming} of {trials} trials in {frame['project'].nunique()} "
            "project(s). "
            f"Objective **{objective}** (lower is better{percent}), an execution scored by its "
            f"**{', '.join(scored) or tables.MISSING}** ({_score_words(scored)}); a configuration's score is the "
            "mean ± sample std over its executions (seeds) with a finite score, n of them.", ""]


def best_section(table):
    """The best configuration per group, its scores and test scores."""
    by = table.attrs["by"]
    lines = [f"## Best configuration per {', '.join(by) or 'trial'}", ""]
    if tables.left_out(table):  # Hyperband's stopped executions: said, never compared at fewer epochs
        lines += [tables.left_out(table)[0].upper() + tables.left_out(table)[1:] + ".", ""]
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
        lines += ["No tracker metrics in these records (a search run with `--tracker bp_cosine --tracker weight_alignment` "
                  "records them).", ""]
    return lines, [*figures, *alignment.values()]


def _score_words(scored):
    words = {"final": "the last epoch", "best": "the best epoch"}
    return "; ".join(words.get(s, f"the mean of the last {s[4:]} epochs") for s in scored) or "—"


def significance_section(table, per_execution, reference=REFERENCE):
    """The Markdown lines comparing each best configuration with the reference rule's (bp): paired tests on
    the test split, over confirmation executions where there are any (`bpfree.results.statistics`)."""
    by = table.attrs["by"]
    lines = [f"## Compared with {reference}", ""]
    if not by:
        return lines + ["Not grouped by rule: nothing to compare.", ""]
    references = table[table[by[0]] == reference]
    if references.empty:
        return lines + [f"No {reference} configuration in these records: nothing to compare against.", ""]
    others = [c for c in by[1:] if references[c].notna().any()]  # bp has no rule hparams: not matched on
    same = f" with the same {', '.join(others)}" if others else ""
    confirmation = statistics.uses_confirmation(per_execution)
    metrics = statistics.tested_metrics(table, per_execution, confirmation)
    if confirmation:
        lines += ["Compared: the **confirmation executions** only, each chosen configuration re-run with fresh "
                  "seeds after the selection, so they played no part in choosing it. Their test scores, mean ± "
                  "sample std over n confirmation executions:", "",
                  tables.markdown(statistics.confirmation_summary(table, per_execution, metrics)), ""]
    elif metrics and all(column == "score" for _, column in metrics):
        lines += ["No test scores in these records, and no configuration was chosen among others (each group "
                  "ran one): the objective's score itself is compared.", ""]
    else:
        lines += ["No confirmation executions in these records: **the test scores compared come from the same "
                  "executions whose validation scores chose each configuration** (a search's `--confirm_seeds N` "
                  "re-runs the chosen configurations with fresh seeds, which did not).", ""]
    if not metrics:
        return lines + ["No test scores among these executions: nothing is tested (the validation score that "
                        "chose each configuration is not).", ""]
    compared = statistics.against_reference(table, per_execution, reference, others, metrics, confirmation)
    pairs = sorted({int(n) for n in compared["wilcoxon_n"].dropna() if n > 0})
    floors = "; ".join(f"{n} nonzero difference{'s' if n > 1 else ''}: "
                       f"{tables.number(statistics.wilcoxon_floor(n), 3)}" for n in pairs)
    lines += [f"Each configuration against {reference}'s best configuration{same}, per test metric, on paired "
              f"executions: an execution and the {reference} execution with the same seed (execution k of every "
              "rule runs with seed + k); pairs: how many, and the executions left out for want of a partner. "
              f"Δ mean: the mean of the paired differences, the configuration's minus {reference}'s (lower is "
              f"better), with its {statistics.CONFIDENCE:.0%} confidence interval (t-based). Paired t-test and "
              "Wilcoxon signed-rank test, both two-sided; the Wilcoxon p is exact (zero differences dropped, "
              "with ties, the exact distribution of the mid-rank statistic over all 2^n sign assignments). Holm p: the p adjusted by Holm's method across the "
              f"configurations compared with {reference} ({len(compared['configuration'].unique())}; those "
              "tested count), per metric and test.", "",
              "**The smallest two-sided Wilcoxon p with n nonzero differences is 2 / 2^n**"
              + (f" (here {floors})" if floors else "")
              + ": 0.25 for 3 seeds, 0.0625 for 5; a p below 0.05 needs at least 6. The paired t-test has no "
              "such floor but assumes roughly normal differences.", "",
              tables.markdown(statistics.shown(compared, reference)), ""]
    return lines
