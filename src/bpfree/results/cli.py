"""`python -m bpfree.results EXPERIMENT_DIR [flags]`: the best trials as a console table, curves, a report.

    python -m bpfree.results EXPERIMENT_DIR [--by algorithm,arch] [--objective val_loss] [--score best]
                             [--plot curves.png] [--report report.md]

Exit status: 0; 2 for bad input or an output path that cannot be written (one line naming it); 1 when
some record files were corrupt (each named; the table is made of the rest).
"""

import argparse
import os
import sys

from bpfree.results import plots, report, tables
from bpfree.results.frame import load, rule_column
from bpfree.results.scores import best

CONSOLE_WIDTH = 100
# What --plot writes (matplotlib infers the format from the extension; without one it would append ".png").
PLOT_FORMATS = (".png", ".pdf", ".svg")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bpfree.results", description="Best hparams, curves, a report.")
    parser.add_argument("experiment_dir")
    parser.add_argument("--by", default=None, help="group by these hparams, comma-separated (e.g. algorithm,arch)")
    parser.add_argument("--objective", default=None, help="metric to minimise (default: the search's objective)")
    parser.add_argument("--score", default=None, help="final | best | last<k> (default: each search's setting)")
    parser.add_argument("--plot", default=None, help="write mean ± std curves of the best trial per group here (PNG)")
    parser.add_argument("--report", default=None, help="write a Markdown comparison report here (figures beside it)")
    args = parser.parse_args(argv)
    errors, target = [], None
    try:
        frame = load(args.experiment_dir, errors=errors)
        if frame.empty:
            raise ValueError(f"No records under {args.experiment_dir!r}.")
        if args.report:
            report.check_path(args.report)
        if args.plot and os.path.splitext(args.plot)[1].lower() not in PLOT_FORMATS:
            raise ValueError(f"Invalid --plot {args.plot!r}: a file name ending in {', '.join(PLOT_FORMATS)}.")
        table = best(frame, args.objective, by=args.by, score=args.score)
        print(tables.console(table, width=CONSOLE_WIDTH))
        if args.plot:
            target = args.plot
            plots.plot_curves(frame, table.attrs["objective"], by=args.by or rule_column(frame), path=args.plot,
                              score=args.score)
            print(f"curves: {args.plot}")
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
