"""Peak memory of a small real search on full MNIST: the grouped engine against one `fit` per execution.

A search holds each split once as tensors (`bpfree.tuning.search.SearchData`); every execution's
pipeline gathers from them, so the peak resident set should not grow with the number of executions
(before, each `fit` execution loaded and copied the 54,000-example training split again). Each search
runs in a child process (bp and dfa, 784-256-256, 2 learning rates, 1 epoch, the whole training set) on
the IDX files under $BPFREE_DATA_DIR; its peak RSS is the child's ru_maxrss (`os.wait4`). A child that
only imports bpfree and TensorFlow and loads the splits gives the floor.

    BPFREE_DATA_DIR=/work/shared/data python bench/mnist_memory.py [--src DIR] [--lrs 1e-3,3e-3]

``--src`` runs another checkout's src/ (e.g. an export of an older commit) for a before/after table.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = """
[search]
dataset = "mnist"
objective = "val_error_rate"
batch_size = 64
num_epochs = 1
examples_frac = 0.0

[space]
algorithm = ["bp", "dfa"]
arch = ["256-256"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [{lrs}]
dropout = [0.0]
"""
FLOOR = textwrap.dedent("""
    import tensorflow as tf
    from bpfree import datasets
    from bpfree.tuning.config import SearchConfig
    from bpfree.tuning.splits import InMemorySplit
    c = SearchConfig(dataset="mnist", objective="val_error_rate")
    splits = [InMemorySplit(*datasets.load(c.dataset, s, scaler=c.scaler, validation_frac=c.validation_frac),
                                  datasets.info(c.dataset), c.problem_type, True) for s in ("train", "validation", "test")]
    print("splits in memory:", sum(t.shape.num_elements() * t.dtype.size for s in splits for t in (s.x, s.y)), "bytes")
""")


def run_child(args, src, env_extra=None):
    """(peak RSS in MiB, seconds, return code, last lines of output) of a child `python args...`."""
    env = {**os.environ, "PYTHONPATH": src, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read().strip().splitlines()[-3:]
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode, tail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(ROOT, "src"), help="the src/ directory to run")
    parser.add_argument("--lrs", default="1e-3,3e-3", help="comma-separated learning rates")
    args = parser.parse_args()
    if not os.environ.get("BPFREE_DATA_DIR"):
        sys.exit("Set BPFREE_DATA_DIR to a directory holding mnist/ (IDX files), e.g. /work/shared/data.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        preset = os.path.join(tmp, "preset.toml")
        with open(preset, "w") as f:
            f.write(PRESET.format(lrs=", ".join(args.lrs.split(","))))
        rss, seconds, rc, tail = run_child(["-c", FLOOR], args.src)
        rows.append(("floor: import + the 3 splits as tensors", rss, seconds, rc, tail))
        for label, engine in (("member programs (default --engine)", "members"), ("fit (--engine fit)", "fit")):
            flags = ["--engine", engine]
            rss, seconds, rc, tail = run_child(["-m", "bpfree", os.path.join(tmp, f"exp-{engine}"),
                                                "--hparams", preset, "--yes", *flags], args.src,
                                               {"TFDS_DATA_DIR": os.path.join(tmp, "tfds")})
            rows.append((label, rss, seconds, rc, tail))
    print(f"src: {args.src}; {sys.platform}; lrs {args.lrs}; bp and dfa, 784-256-256, 1 epoch, full MNIST")
    print(f"{'run':42s} {'peak RSS':>10s} {'wall':>8s}  rc")
    for label, rss, seconds, rc, tail in rows:
        print(f"{label:42s} {rss:8.0f} MiB {seconds:7.1f}s  {rc}")
        if rc or label.startswith("floor"):
            print("    " + "\n    ".join(tail))


if __name__ == "__main__":
    main()
