"""`python -m bpfree.results EXPERIMENT_DIR [flags]`: the best trials as a console table, curves, a report,
the table as CSV and LaTeX, the objective against the learning rate.

    python -m bpfree.results EXPERIMENT_DIR [--by algorithm,arch] [--objective val_loss] [--score best]
                             [--plot curves.png] [--report report.md] [--csv best.csv] [--latex best.tex]
                             [--lr_plot lr.png]

A file name without a directory (report.md) is written into EXPERIMENT_DIR; a path (./report.md,
out/report.md) is written where it says.
Exit status: 0; 2 for bad input or an output path that cannot be written (one line naming it); 1 when
some record files were corrupt (each named; the table is made of the rest).
"""

import argparse
import os
import sys

from bpfree import io
from bpfree.results import plots, report, tables
from bpfree.results.frame import load, rule_column
from bpfree.results.scores import best

CONSOLE_WIDTH = 100
OUTPUTS = ("plot", "report", "csv", "latex", "lr_plot")  # the flags naming a file to write
# What --plot and --lr_plot write (matplotlib infers the format from the extension; without one it would append
# ".png").
PLOT_FORMATS = (".png", ".pdf", ".svg")


def output_path(experiment_dir, path):
    """Where an output flag's file goes: a bare file name into the experiment directory, a path as given."""
    return path if os.path.dirname(path) else os.path.join(experiment_dir, path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bpfree.results", description="Best hparams, curves, a report. "
                                     "A bare file name given to --plot, --report, --csv, --latex or --lr_plot is "
                                     "written into EXPERIMENT_DIR; a path where it says.")
    parser.add_argument("experiment_dir")
    parser.add_argument("--by", default=None, help="group by these hparams, comma-separated (e.g. algorithm,arch)")
    parser.add_argument("--objective", default=None, help="metric to minimise (default: the search's objective)")
    parser.add_argument("--score", default=None, help="final | best | last<k> (default: each search's setting)")
    parser.add_argument("--plot", default=None, help="write mean ± std curves of the best trial per group here (PNG)")
    parser.add_argument("--report", default=None, help="write a Markdown comparison report here (figures beside it)")
    parser.add_argument("--csv", default=None, help="write the table here as CSV (numbers unrounded: mean, std, "
                        "executions, test metrics, every hparam)")
    parser.add_argument("--latex", default=None, help="write the table here as a LaTeX tabular (booktabs), as "
                        "printed, without the project and trial id columns")
    parser.add_argument("--lr_plot", default=None, help="write the objective against the learning rate here (PNG): "
                        "a line per rule, the best configuration at each lr, mean and min–max over executions")
    args = parser.parse_args(argv)
    for name in OUTPUTS:
        if getattr(args, name):
            setattr(args, name, output_path(args.experiment_dir, getattr(args, name)))
    errors, target = [], None
    try:
        frame = load(args.experiment_dir, errors=errors)
        if frame.empty:
            raise ValueError(f"No records under {args.experiment_dir!r}.")
        if args.report:
            report.check_path(args.report)
        for name in ("plot", "lr_plot"):
            path = getattr(args, name)
            if path and os.path.splitext(path)[1].lower() not in PLOT_FORMATS:
                raise ValueError(f"Invalid --{name} {path!r}: a file name ending in {', '.join(PLOT_FORMATS)}.")
        table = best(frame, args.objective, by=args.by, score=args.score)
        print(tables.console(table, width=CONSOLE_WIDTH))
        if args.plot:
            target = args.plot
            plots.plot_curves(frame, table.attrs["objective"], by=args.by or rule_column(frame), path=args.plot,
                              score=args.score)
            print(f"curves: {args.plot}")
        if args.csv:
            target = args.csv
            write_csv(table, args.csv)
            print(f"csv: {args.csv}")
        if args.latex:
            target = args.latex
            write_latex(table, args.latex)
            print(f"latex: {args.latex}")
        if args.lr_plot:
            target = args.lr_plot
            plots.plot_lr(frame, table.attrs["objective"], path=args.lr_plot, score=args.score)
            print(f"lr plot: {args.lr_plot}")
        if args.report:
            target = args.report
            report.write(frame, args.report, objective=args.objective, by=args.by, score=args.score,
                         source=args.experiment_dir)
            print(f"report: {args.report}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path that is not writable, on a read-only or full file system
        if target is None:
            raise
        print(f"error: cannot write {target}: {e.strerror or e}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def write_csv(table, path):
    """A `best` table as CSV (pandas' to_csv; floats unrounded, so it reads back equal), written atomically."""
    io.write_atomic(path, lambda tmp: table.to_csv(tmp, index=False), ".csv")
    return path


def write_latex(table, path):
    """A `best` table as the console shows it (`tables.summary`: mean ± std, n, score, tests, the hparams that
    differ), as LaTeX for a paper: without the project and trial id columns (the CSV has them)."""
    rows, shared = tables.summary(table)
    rows = rows.drop(columns=[c for c in ("project", "trial_id") if c in rows])
    shared.pop("project", None)
    objective = table.attrs["objective"]
    notes = [f"{objective}{' in %' if 'error_rate' in objective else ''}, lower is better: mean ± std over n "
             "executions; score: rule@epochs it comes from"]
    if shared:
        notes.append("every row: " + ", ".join(f"{k} {v}" for k, v in shared.items()))
    text = tables.latex(rows, notes)

    def write_text(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    io.write_atomic(path, write_text, ".tex")
    return path
