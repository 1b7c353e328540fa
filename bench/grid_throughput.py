"""Grid-search throughput (issue 22): whole searches through the command line, one source tree against another.

    python bench/grid_throughput.py --before DIR [--grids small,quickstart,lenet] [--reps 3]
        [--lenet_examples 0.05] [--after_flags "--members 16"] [--variant NAME=FLAGS ...]

``--before DIR``: a checkout whose ``src/`` is the reference (e.g. ``git worktree add /tmp/before <commit>``);
the tree this script is in is "after". Each variant is ``python -m bpfree EXP --hparams PRESET --yes``
in a fresh process and a fresh experiment directory with that tree's ``src`` on PYTHONPATH, with its
own default engine (before: its defaults; after: its defaults plus ``--after_flags``). Timed: wall
(perf_counter) and CPU (the child's user + system time, `os.wait4`), process start and imports
included, since a search pays them too. Each repetition runs every (grid, tree) once, in an order
rotated from one repetition to the next (interleaved, so machine noise hits both alike); the table
gives trials per hour and CPU seconds per trial, median and min over the repetitions, and the ratio
variant / before of each repetition's pair (median, min). ``--variant NAME=FLAGS`` adds after-tree
variants (e.g. ``xla=--use_xla=true``).

Grids:
- ``small``: {bp, dfa, drtp, cce} × lr {1e-4, 1e-3, 1e-2}, 256-256 tanh, digits, 5 epochs, 1 execution.
- ``quickstart``: hparams/quickstart.toml (4 rules × 5 lrs × 2 seeds, MNIST-1D, 30 epochs).
- ``lenet``: LeNet-5 (conv6k5-pool2-conv16k5-pool2-120-84, tanh) on MNIST (``BPFREE_DATA_DIR``),
  {bp, fa, dfa} × lr {1e-4, 1e-3, 1e-2} × 2 seeds, 1 epoch on ``--lenet_examples`` of the training split.

The small grid's arithmetic: per example and train step a dense layer of n_in × n_out costs 2 n_in n_out
FLOPs forward and 4 n_in n_out backward (both gradients), evaluation 2 n_in n_out; `--flops` prints the
count for the small grid and the CPU per trial it implies at a stated FLOP rate beside the measured one.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPACE = """
[space]
algorithm = {algorithms}
arch = ["{arch}"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = {lrs}
dropout = [0.0]
"""
GRIDS = {
    "small": (textwrap.dedent("""
        [search]
        dataset = "digits"
        num_epochs = 5
        executions_per_trial = 1
        """) + SPACE.format(algorithms='["bp", "dfa", "drtp", "cce"]', arch="256-256", lrs="[1e-4, 1e-3, 1e-2]"), 12),
    "quickstart": (None, 20),
    "lenet": (textwrap.dedent("""
        [search]
        dataset = "mnist"
        num_epochs = 1
        executions_per_trial = 2
        examples_frac = {examples}
        """) + SPACE.format(algorithms='["bp", "fa", "dfa"]', arch="conv6k5-pool2-conv16k5-pool2-120-84",
                            lrs="[1e-4, 1e-3, 1e-2]"), 9),
}


def run_search(src, preset, directory, flags):
    """(wall seconds, CPU seconds, return code, last lines) of one search in a fresh process."""
    env = {**os.environ, "PYTHONPATH": src, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bpfree", directory, "--hparams", preset, "--yes", *flags],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        tail = out.read().strip().splitlines()[-3:]
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), tail


def small_grid_flops():
    """FLOPs of one trial of the small grid (bp's count; the other rules' differ by their projections)."""
    widths, n_train, n_val, n_test, epochs = [64, 256, 256, 10], 1293, 144, 360, 5  # digits: 1797 = 1437 + 360
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    return epochs * (n_train * 6 * macs + n_val * 2 * macs) + n_test * 2 * macs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a checkout whose src/ is the reference")
    parser.add_argument("--grids", default="small,quickstart,lenet")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--lenet_examples", type=float, default=0.05)
    parser.add_argument("--after_flags", default="", help="flags added to the after tree's searches")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=FLAGS: one more after-tree variant with these flags (repeatable)")
    parser.add_argument("--flops_per_second", type=float, default=1e11, help="for the arithmetic line")
    args = parser.parse_args()
    trees = {"before": (os.path.join(args.before, "src"), []),
             "after": (os.path.join(ROOT, "src"), args.after_flags.split())}
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        trees[name] = (os.path.join(ROOT, "src"), flags.split())
    grids = args.grids.split(",")
    results = {(g, t): [] for g in grids for t in trees}
    with tempfile.TemporaryDirectory(prefix="bpfree-grid-") as tmp:
        presets = {}
        for g in grids:
            text, _ = GRIDS[g]
            path = os.path.join(ROOT, "hparams", "quickstart.toml") if text is None else os.path.join(tmp, f"{g}.toml")
            if text is not None:
                with open(path, "w") as f:
                    f.write(text.format(examples=args.lenet_examples))
            presets[g] = path
        variants = [(g, t) for g in grids for t in trees]
        for rep in range(args.reps):
            order = variants[rep % len(variants):] + variants[:rep % len(variants)]
            for g, t in order:
                src, flags = trees[t]
                wall, cpu, rc, tail = run_search(src, presets[g], os.path.join(tmp, f"{g}-{t}-{rep}"), flags)
                print(f"rep {rep} {g:10s} {t:6s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  rc {rc}", flush=True)
                if rc:
                    sys.exit(f"{g} {t} exited {rc}:\n" + "\n".join(tail))
                results[(g, t)].append((wall, cpu))
    print("\n| grid | tree | trials | trials/h median (min) | CPU s/trial median (min) | / before: trials/h "
          "median (min) | / before: CPU/trial median (max) |\n|---|---|---|---|---|---|---|")
    for g in grids:
        trials = GRIDS[g][1]
        for t in trees:
            walls = [w for w, _ in results[(g, t)]]
            cpus = [c / trials for _, c in results[(g, t)]]
            row = (f"| {g} | {t} | {trials} | {3600 * trials / statistics.median(walls):.0f} "
                   f"({3600 * trials / max(walls):.0f}) | {statistics.median(cpus):.2f} ({min(cpus):.2f}) |")
            if t != "before":
                speed = [b[0] / a[0] for a, b in zip(results[(g, t)], results[(g, "before")])]
                cpu = [a[1] / b[1] for a, b in zip(results[(g, t)], results[(g, "before")])]
                row += f" {statistics.median(speed):.2f} ({min(speed):.2f}) | {statistics.median(cpu):.2f} ({max(cpu):.2f}) |"
            else:
                row += " | |"
            print(row)
    if "small" in grids:
        flops = small_grid_flops()
        cpus = [c / GRIDS["small"][1] for _, c in results[("small", "after")]]
        arithmetic = flops / args.flops_per_second
        print(f"\nsmall grid: {flops / 1e9:.2f} GFLOP per trial, {arithmetic:.3f} s at "
              f"{args.flops_per_second / 1e9:.0f} GFLOP/s; measured CPU per trial (after) {statistics.median(cpus):.2f} s: "
              f"{statistics.median(cpus) / arithmetic:.0f}× the arithmetic")


if __name__ == "__main__":
    main()
