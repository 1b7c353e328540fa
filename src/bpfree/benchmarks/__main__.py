"""``python -m bpfree.benchmarks NAME [--full] [--experiment_dir DIR] [--doc PATH] [--write_only]``.

Runs a published table's protocol (`bpfree.benchmarks.specs`) as ordinary resumable searches, one per dataset,
then writes ``docs/benchmarks/NAME.md``. Re-running the same command resumes where it stopped. Exit codes as
the search's: 0 done, 2 bad input (one line, nothing trained), 3 a crash or an unfinished search (re-run it).
"""

import argparse
import os
import shlex
import sys
import traceback

from bpfree.benchmarks import document, runner
from bpfree.benchmarks.specs import PROTOCOLS, ROOT, TABLES


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bpfree.benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("name", help="the table: " + ", ".join(TABLES))
    parser.add_argument("--full", action="store_true", help="the paper's whole protocol (the preset as it is); "
                        "the same as --protocol full")
    parser.add_argument("--protocol", default=None, help="reduced (default: fits about an hour on 2 CPU cores), "
                        "full, or smoke (1 epoch, 1 seed, one lr: checks the pipeline end to end)")
    parser.add_argument("--experiment_dir", help="default: data/benchmarks/NAME (NAME-full with --full)")
    parser.add_argument("--doc", help="default: docs/benchmarks/NAME.md")
    parser.add_argument("--dataset", action="append", help="run only this column (repeatable)")
    parser.add_argument("--members", type=int, default=0, help="as the search's --members (0: automatic)")
    parser.add_argument("--write_only", action="store_true", help="write the page from the records; train nothing")
    parser.add_argument("--dry_run", action="store_true", help="say what would run (checked); train and write nothing")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.name not in TABLES:
        print(f"error: Invalid table {args.name!r}; valid: {', '.join(TABLES)}.", file=sys.stderr)
        return 2
    table = TABLES[args.name]
    protocol = args.protocol or ("full" if args.full else "reduced")
    if protocol not in PROTOCOLS or (args.full and protocol != "full"):
        print(f"error: Invalid --protocol {protocol!r}{' with --full' if args.full else ''}; valid: "
              f"{', '.join(PROTOCOLS)}.", file=sys.stderr)
        return 2
    experiment_dir = args.experiment_dir or os.path.join("data", "benchmarks",
                                                         table.name + ("" if protocol == "reduced" else f"-{protocol}"))
    doc = args.doc or os.path.join(ROOT, "docs", "benchmarks", f"{table.name}.md")
    if args.dataset:
        bad = [d for d in args.dataset if d not in table.datasets]
        if bad:
            print(f"error: Invalid --dataset {bad[0]!r} for {table.name}; valid: {', '.join(table.datasets)}.",
                  file=sys.stderr)
            return 2
    if args.dry_run:
        try:
            runner.describe(table, protocol, datasets=args.dataset)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    command = "python -m bpfree.benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if not args.write_only:
        try:
            unfinished = runner.run(table, experiment_dir, protocol, datasets=args.dataset,
                                    members=args.members)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except Exception:
            traceback.print_exc()
            return 3
        if unfinished:
            print(f"benchmark incomplete: the {', '.join(unfinished)} search(es) did not finish; re-run the same "
                  "command to resume", file=sys.stderr)
            return 3
    if not os.path.isdir(experiment_dir):
        print(f"error: No experiment directory {experiment_dir!r}; run without --write_only first.", file=sys.stderr)
        return 2
    path = document.write(table, experiment_dir, doc, command, protocol)
    print(f"{table.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
