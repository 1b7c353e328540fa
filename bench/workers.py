"""Distributed search scaling: trials per hour with 1 and 2 workers, and the coordinator's overhead.

    python bench/workers.py [--epochs 2] [--arch 64]

A grid of small models (bp, fa, dfa, drtp × 3 learning rates on digits) runs three ways, each in a
fresh experiment dir, every TensorFlow process pinned to 1 intra-op thread: a plain single-process
search pinned to one core, `--workers 1`, `--workers 2` (the supervisor pins each worker to its share
of the cores: one each here). Wall time of the whole command (process start-up included)
gives trials/hour; (workers-1 time − single-process time) / trials is the coordinator's per-trial
overhead (gRPC round trips, the extra processes' start-up amortised over the grid).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
batch_size = 64
num_epochs = {epochs}
executions_per_trial = 1

[space]
algorithm = ["bp", "fa", "dfa", "drtp"]
arch = ["{arch}"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3, 1e-2, 1e-1]
dropout = [0.0]
"""
TRIALS = 12


def run(preset, directory, *extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BPFREE_INTRA_OP_THREADS": "1",
           "BPFREE_THREADS_PER_WORKER": "1"}
    # The single process gets one core, as each worker does (the supervisor pins workers).
    pin = None if extra else (lambda: os.sched_setaffinity(0, {0}))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bpfree", directory, "--hparams", preset, *extra], env=env,
                         capture_output=True, text=True, cwd=ROOT, preexec_fn=pin)
    if out.returncode != 0:
        raise SystemExit(out.stdout[-2000:] + out.stderr[-2000:])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--arch", default="64")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        preset = os.path.join(tmp, "grid.toml")
        with open(preset, "w") as f:
            f.write(PRESET.format(epochs=args.epochs, arch=args.arch))
        times = {
            "single process": run(preset, os.path.join(tmp, "single")),
            "1 worker": run(preset, os.path.join(tmp, "w1"), "--workers", "1"),
            "2 workers": run(preset, os.path.join(tmp, "w2"), "--workers", "2"),
        }
    print(f"{TRIALS} trials (digits, {args.arch}, {args.epochs} epochs), 1 intra-op thread per process, "
          f"{os.cpu_count()} cores")
    print("| run | wall s | trials/hour | × 1 worker |")
    print("|---|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} | {TRIALS * 3600 / seconds:.0f} | {times['1 worker'] / seconds:.2f} |")
    overhead = (times["1 worker"] - times["single process"]) / TRIALS
    print(f"coordinator overhead per trial: {overhead:.2f} s; scaling 1 → 2 workers: "
          f"{times['1 worker'] / times['2 workers']:.2f}×")


if __name__ == "__main__":
    main()
