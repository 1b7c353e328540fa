"""How a `best` table is shown: rounded numbers, mean ± std, group labels, and columns that fit.

Every number is printed to 4 significant digits (an error rate, in percent, as 70.8; a loss as 0.3761) and
every std to 2; a missing value is "—". Columns that hold one value in every row (a rule's own hparam: in
every row it applies to) are taken out of the table and listed once under it ("every row: arch 16,
activation tanh, projection_pool 1 (dfa)"); on the console, the table drops
columns (trial_id, project, then the hparams from the right) and shortens long cells until it fits.
"""

import math
import textwrap

import pandas as pd

MISSING = "—"
LONGEST_CELL = 24  # console cells longer than this are shortened with "…" when the table is too wide


def number(value, digits=4):
    """`value` to `digits` significant digits ("70.8", "0.3761", "1.058e-05"); "—" if not a finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return MISSING
    return f"{value:.{digits}g}" if math.isfinite(value) else MISSING


def mean_std(mean, std):
    """"70.8 ± 1.3"; the mean alone when there is no std (one execution)."""
    spread = number(std, 2)
    return number(mean) if spread == MISSING or number(mean) == MISSING else f"{number(mean)} ± {spread}"


def cell(value):
    """An hparam or a label as text: numbers rounded like scores, a missing value (a rule hparam of
    another rule) as "—"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return number(value)
    return str(value)


def group_label(row, by):
    """"dfa", "dfa · arch 500-500" or "gait · orthogonal_reg 0.1": a best row's group, for legends."""
    if not by:
        return str(row["trial_id"])
    return " · ".join([cell(row[by[0]])] + [f"{c} {cell(row[c])}" for c in by[1:]])


def epochs_used(row):
    """The 1-based epochs a trial's scores come from: "10/10", "4–9/10" (its executions differ), "—"."""
    first, last, total = row.get("from_epoch"), row.get("to_epoch"), row.get("epochs")
    if first is None or last is None or not (math.isfinite(first) and math.isfinite(last)):
        return MISSING
    span = f"{int(first)}" if first == last else f"{int(first)}–{int(last)}"
    return f"{span}/{int(total)}" if total is not None and math.isfinite(total) else span


def score_used(row):
    """"final@10/10", "best@4–9/10", "last3@8–10/10": which score of its executions, and where from."""
    return f"{row['scored_by']}@{epochs_used(row)}"


def summary(table, tests=None):
    """(rows, shared): a `best` table as a DataFrame of text, and {column: text} of the columns holding one
    value in every row. `tests`: the test metrics to show (default: every one with a value)."""
    objective, by = table.attrs["objective"], list(table.attrs.get("by") or [])
    hparams = [c for c in table.attrs.get("hparams", []) if c in table and c not in by]
    available = [c[len("test."):] for c in table.columns
                 if c.startswith("test.") and not c.endswith("_std") and table[c].notna().any()]
    columns = {c: table[c].map(cell) for c in by}
    columns[objective] = pd.Series([mean_std(r[objective], r[f"{objective}_std"]) for _, r in table.iterrows()],
                                   index=table.index, dtype=object)
    columns["n"] = pd.Series([str(int(r["executions"])) if r["executions"] == r["runs"]
                              else f"{int(r['executions'])}/{int(r['runs'])}" for _, r in table.iterrows()],
                             index=table.index, dtype=object)
    columns["score"] = pd.Series([score_used(r) for _, r in table.iterrows()], index=table.index, dtype=object)
    for metric in (available if tests is None else [m for m in tests if m in available]):
        columns[f"test {metric}"] = pd.Series(
            [mean_std(r[f"test.{metric}"], r[f"test.{metric}_std"]) for _, r in table.iterrows()],
            index=table.index, dtype=object)
    shared = {}
    for name in hparams + ["project", "trial_id"]:
        shown = table[name].map(cell)
        present = shown[shown != MISSING]
        if name == "trial_id" or present.nunique() > 1:
            columns[name] = shown
        elif len(present) == len(shown) or not len(present):  # one value in every row (or one row), or none
            if len(present):
                shared[name] = present.iloc[0]
        else:  # a rule's own hparam, one value where it applies: "projection_pool 1 (dfa)"
            owners = sorted(set(table.loc[present.index, by[0]].map(cell))) if by else []
            shared[name] = present.iloc[0] + (f" ({', '.join(owners)})" if owners else "")
    return pd.DataFrame(columns), shared


def left_out(table):
    """The sentence on the executions a `best` table's selection left out as trained to fewer epochs than their
    search's num_epochs (Hyperband's: table.attrs["partial"]), or None where there are none."""
    counts = table.attrs.get("partial") or {}
    if not counts:
        return None
    said = ", ".join(f"{n} {why}" for why, n in counts.items())
    return (f"not compared: {sum(counts.values())} Hyperband executions trained to fewer epochs than num_epochs "
            f"({said}); the best configurations are chosen among those trained to num_epochs")


def console(table, width=100):
    """The table as console text of at most `width` columns (where it can be), with its legend."""
    objective = table.attrs["objective"]
    counterpart = objective.removeprefix("val_")
    available = [c[len("test."):] for c in table.columns if c.startswith("test.") and not c.endswith("_std")]
    tests = [counterpart] if counterpart in available else available[:1]
    rows, shared = summary(table, tests=tests)
    percent = " in %" if "error_rate" in objective else ""
    lines = textwrap.wrap(f"{objective}{percent}, lower is better: mean ± std over n executions; score: rule@epochs "
                          "it comes from", width)
    if rows.empty:
        return "\n".join(lines + ["(no trial with a finite score)"] + ([left_out(table)] if left_out(table) else []))
    text, dropped = fit(rows, width, protected=len(table.attrs.get("by") or []) + 3)
    lines.append(text)
    if shared:
        lines += textwrap.wrap("every row: " + ", ".join(f"{k} {v}" for k, v in shared.items()), width,
                               break_on_hyphens=False)
    if dropped:
        lines += textwrap.wrap(f"not shown (width): {', '.join(dropped)}", width, break_on_hyphens=False)
    if left_out(table):
        lines += textwrap.wrap(left_out(table), width, break_on_hyphens=False)
    return "\n".join(lines)


def fit(rows, width, protected=0):
    """(text, dropped columns): `rows` as text no wider than `width` where it can be: trial_id and project
    go first, then long cells are shortened in their middle, then columns go from the right (never the
    first `protected`, the score or the test columns)."""
    rows, dropped = rows.copy(), []

    def fits():
        return _width(rows.to_string(index=False)) <= width

    for column in [c for c in ("trial_id", "project") if c in rows]:
        if fits():
            break
        rows, dropped = rows.drop(columns=column), dropped + [column]
    if not fits():
        rows = rows.map(shorten)
    for column in reversed(rows.columns[protected:]):
        if fits():
            break
        if not (column.startswith("test ") or column == "score"):
            rows, dropped = rows.drop(columns=column), dropped + [column]
    return rows.to_string(index=False), dropped


def shorten(text, longest=LONGEST_CELL):
    """`text` cut in its middle to `longest` characters ("conv32k3-conv…pool2-256"): both ends tell."""
    if len(text) <= longest:
        return text
    head = (longest - 1) // 2 + (longest - 1) % 2
    return f"{text[:head]}…{text[len(text) - (longest - 1 - head):]}"


def markdown(rows):
    """A DataFrame of text as a Markdown table (pipes in cells escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(rows.columns), line(["---"] * len(rows.columns))] + [line(r) for r in rows.itertuples(
        index=False)])


# LaTeX's special characters in table text, and the symbols of `summary`'s cells spelled for LaTeX.
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "—": "---",
          "–": "--", "…": r"\ldots{}", "·": r"$\cdot$", "×": r"$\times$"}


def latex_escape(text):
    """`text` with LaTeX's special characters escaped and the tables' symbols (±, —, …) in LaTeX."""
    return "".join(_LATEX.get(c, c) for c in str(text))


def latex(rows, notes=()):
    """A DataFrame of text (`summary`'s rows) as a booktabs LaTeX tabular, `notes` as comment lines above it.

    Written here rather than by pandas' `DataFrame.to_latex`: that goes through pandas' Styler, which needs
    jinja2, a package bpfree does not otherwise depend on (and the cells are text already: the escaping and
    the ± are all there is to do)."""
    def line(cells):
        return " & ".join(latex_escape(c) for c in cells) + r" \\"

    head = [f"% {note}" for note in notes] + ["% needs \\usepackage{booktabs}",
                                              "\\begin{tabular}{" + "l" * len(rows.columns) + "}", r"\toprule"]
    body = [line(rows.columns), r"\midrule"] + [line(r) for r in rows.itertuples(index=False)]
    return "\n".join(head + body + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def _width(text):
    return max((len(line) for line in text.splitlines()), default=0)
