"""Start-up cost of the search command line: what each way in imports, and how long a fresh process takes.

    python bench/import_cost.py [--repeat 5] [--cases help,bad_value,bad_rule,search_imports]
                                [--src before=/tmp/old/src --src after=src]

Each case is one fresh `python` process (what a user or train.bash starts): `--help`, a bad flag value
refused with exit 2 (`--num_epochs=-1`), an unknown rule refused with exit 2, the modules a real search
imports before it trains, and (`--cases all`) the quickstart preset's `--dry_run`, which trains a short
estimate and so takes far longer than its imports. Cases and sources are interleaved and repeated, and the
table gives the median and min of wall and CPU seconds (the child's user + system time), the exit code, and
which heavy libraries the process imported. Then, per case and source, the top modules by cumulative import
time from one `python -X importtime` run. `--src NAME=DIR` (repeatable) compares source trees, e.g. the
code before a change against the working tree; each DIR needs `hparams/` beside it.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "keras", "keras_tuner", "tensorflow_datasets", "pandas", "matplotlib", "scipy", "sklearn")
# The modules `python -m bpfree` loads before a real search trains (its train step is what it imports last).
SEARCH_IMPORTS = "import bpfree.tuning.cli, bpfree.tuning.search, bpfree.tuning.dry_run"


def cases(src, scratch):
    """{case: argv (after the interpreter)}; `src` is a source tree, its presets in ../hparams."""
    quickstart = os.path.join(os.path.dirname(src), "hparams", "quickstart.toml")
    return {
        "help": ["-m", "bpfree", "--help"],
        "bad_value": ["-m", "bpfree", os.path.join(scratch, "x"), "--num_epochs=-1"],
        "bad_rule": ["-m", "bpfree", os.path.join(scratch, "x"), "--algorithm=nope"],
        "search_imports": ["-c", SEARCH_IMPORTS],
        "dry_run": ["-m", "bpfree", os.path.join(scratch, "dry"), f"--hparams={quickstart}", "--dry_run"],
    }


def run_once(args, src, importtime=False):
    """(wall s, cpu s, exit code, stderr) of one fresh process running `python [-X importtime] args`."""
    env = dict(os.environ, PYTHONPATH=src, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, done.stderr


def import_times(stderr):
    """[(module, cumulative µs, depth)] from `-X importtime` lines, in the order Python printed them."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line.split("|", 2)
        rows.append((name.strip(), int(cumulative), len(name) - len(name.lstrip())))
    return rows


def heavy_present(rows):
    """The HEAVY libraries among the imported modules (top-level packages only)."""
    names = {name.split(".")[0] for name, _, _ in rows}
    return [lib for lib in HEAVY if lib in names]


def top_modules(rows, count):
    """The `count` imports with the largest cumulative time, heaviest first (a package and what it pulls in)."""
    return sorted(rows, key=lambda row: -row[1])[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", default="help,bad_value,bad_rule,search_imports",
                        help="comma-separated, or 'all' (adds dry_run, which trains a short estimate)")
    parser.add_argument("--src", action="append", default=None, help="NAME=DIR (repeatable); default now=src")
    parser.add_argument("--top", type=int, default=8, help="modules listed per case from -X importtime")
    args = parser.parse_args()
    sources = dict(s.split("=", 1) for s in args.src) if args.src else {"now": os.path.join(ROOT, "src")}
    sources = {name: os.path.abspath(path) for name, path in sources.items()}
    scratch = tempfile.mkdtemp(prefix="bpfree-import-cost-")
    wanted = list(cases(ROOT, scratch)) if args.cases == "all" else args.cases.split(",")
    timings = {(case, name): [] for case in wanted for name in sources}
    codes = {}
    for _ in range(args.repeat):  # interleaved: each round runs every case from every source once
        for case in wanted:
            for name, src in sources.items():
                wall, cpu, code, _ = run_once(cases(src, scratch)[case], src)
                timings[case, name].append((wall, cpu))
                codes[case, name] = code
    profiles = {key: import_times(run_once(cases(sources[key[1]], scratch)[key[0]], sources[key[1]], True)[3])
                for key in timings}

    print(f"{args.repeat} fresh processes per row, interleaved; seconds; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    header = (f"{'case':<15} {'source':<8} {'wall med':>8} {'wall min':>8} {'cpu med':>8} {'cpu min':>8} "
              f"{'exit':>4}  heavy")
    print(header)
    print("-" * len(header))
    for (case, name), runs in timings.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        heavy = ",".join(heavy_present(profiles[case, name])) or "-"
        print(f"{case:<15} {name:<8} {statistics.median(walls):8.2f} {min(walls):8.2f} {statistics.median(cpus):8.2f} "
              f"{min(cpus):8.2f} {codes[case, name]:>4}  {heavy}")
    for (case, name), rows in profiles.items():
        total = sum(us for _, us, depth in rows if depth == 1)
        print(f"\n{case} ({name}): {len(rows)} modules imported, {total / 1e6:.2f} s of top-level imports "
              f"(-X importtime, one run); top {args.top} by cumulative time:")
        for module, us, _ in top_modules(rows, args.top):
            print(f"  {us / 1e6:6.2f} s  {module}")


if __name__ == "__main__":
    main()
