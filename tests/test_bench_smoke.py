"""Every bench/*.py script runs to the end (exit 0) with the smallest arguments it accepts, in a subprocess
from a temporary directory: a smoke test that the benchmarks still run against today's code, not a timing.
The numbers they print are not checked. A new script fails test_every_bench_script_is_smoked_or_skipped
until it has its arguments here (or a skip reason)."""

import os
import resource
import subprocess
import sys
import time

import pytest

from fresh_process import fresh_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
HAS_MNIST = os.path.isdir(os.path.join(SHARED_DATA, "mnist"))

# script: its smallest arguments ({tmp}: a fresh temporary directory). Marked slow where a run takes more
# than about 20 s on 2 cores.
SMOKE = {
    "accuracy.py": ["--suite", "tp", "--datasets", "digits", "--rules", "bp", "--epochs", "1", "--seeds", "1",
                    "--depth", "1", "--lrs", "1e-2", "--exp_dir", "{tmp}/tp", "--quiet"],
    "accuracy.py feedback": ["--suite", "feedback", "--dataset", "digits", "--nets", "dense,conv", "--rules", "bp",
                             "--dense_arch", "16", "--conv_arch", "conv2k3-pool2-8", "--epochs", "1",
                             "--seeds", "1", "--lrs", "1e-2", "--exp_dir", "{tmp}/feedback", "--quiet"],
    "gle_speed.py": ["--repeats", "1", "--batches", "1"],
    "lenet_mnist.py": ["--parts", "search,rules", "--reps", "1", "--epochs", "1", "--examples_frac", "0.01",
                       "--rules", "bp"],
    "mnist_memory.py": ["--lrs", "1e-2"],
    "pipeline.py": ["--batch", "256", "--batches", "1"],
    "projection_memory.py": [],
    "throughput.py": ["--nets", "dense,lenet", "--arch", "16-8-3", "--rules", "dfa", "--batch", "8", "--steps", "2",
                      "--reps", "1"],
    "step_cost.py": ["--arch", "16-8-3", "--batches", "8", "--modes", "graph", "--steps", "20", "--reps", "1"],
    "import_cost.py": ["--repeat", "1", "--cases", "help,bad_value"],
    "search_overhead.py": ["--arch", "8", "--dataset", "digits", "--epochs", "1", "--algorithms", "bp", "--lrs", "1e-2"],
    "checkpoint_cost.py": ["--arch", "8", "--input_dim", "8", "--examples", "64", "--reps", "1"],
    "workers.py": ["--epochs", "1", "--arch", "8"],
    "member_axis.py": ["--members", "1,2", "--rules", "dfa", "--reps", "1", "--baseline-max", "1", "--group-max", "2"],
    "grid_throughput.py": ["--before", ROOT, "--grids", "small", "--reps", "1"],
    "departures.py": ["pool", "--epochs", "1", "--examples_frac", "0.01", "--only", "bp"],
}
# Wall (CPU) seconds measured on 2 shared cores: accuracy tp 12 (7), feedback 11 (8), projection_memory 8 (5),
# throughput 10 (8); the slow ones under a load of 8: gle_speed 107 (31), lenet_mnist 228 (80), mnist_memory 40-140
# (31-42), pipeline 106 (56).
SLOW = {"gle_speed.py", "lenet_mnist.py", "mnist_memory.py", "pipeline.py", "workers.py", "grid_throughput.py",
        "member_axis.py"}
NEEDS_MNIST = {"lenet_mnist.py", "mnist_memory.py"}  # real IDX files under $BPFREE_DATA_DIR
NEEDS_FASHION_MNIST = {"departures.py"}
HAS_FASHION_MNIST = os.path.isdir(os.path.join(SHARED_DATA, "fashion_mnist"))
SKIPPED = {}


def test_every_bench_script_is_smoked_or_skipped():
    scripts = {name for name in os.listdir(BENCH) if name.endswith(".py")}
    smoked = {key.split()[0] for key in SMOKE}
    assert not smoked & set(SKIPPED)
    assert smoked | set(SKIPPED) == scripts, f"give these a smoke run or a skip reason: {scripts - smoked - set(SKIPPED)}"
    assert SLOW <= smoked and NEEDS_MNIST <= smoked


def cases():
    for key, args in SMOKE.items():
        marks = [pytest.mark.slow] if key.split()[0] in SLOW else []
        if key.split()[0] in NEEDS_MNIST:
            marks.append(pytest.mark.skipif(not HAS_MNIST, reason="real MNIST IDX files (../shared/data/mnist) "
                                                                  "are not in this clone"))
        if key.split()[0] in NEEDS_FASHION_MNIST:
            marks.append(pytest.mark.skipif(not HAS_FASHION_MNIST, reason="real Fashion-MNIST IDX files "
                                            "(../shared/data/fashion_mnist) are not in this clone"))
        yield pytest.param(key, args, marks=marks, id=key.replace(" ", "-"))
    for name, reason in SKIPPED.items():
        yield pytest.param(name, None, marks=pytest.mark.skip(reason=reason), id=name)


@pytest.mark.parametrize("key,args", list(cases()))
def test_bench_script_runs_with_its_smallest_arguments(key, args, tmp_path):
    script = os.path.join(BENCH, key.split()[0])
    env = fresh_env(BPFREE_DATA_DIR=SHARED_DATA, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, script, *(a.format(tmp=tmp_path) for a in args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    seconds, end = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = end.ru_utime + end.ru_stime - cpu.ru_utime - cpu.ru_stime
    assert done.returncode == 0, f"{key} exited {done.returncode} after {seconds:.0f} s:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{key} printed nothing"
    if key == "mnist_memory.py":  # its children's exit codes end the table's rows; the script itself exits 0
        rows = [line for line in done.stdout.splitlines() if " MiB " in line]
        assert len(rows) == 3 and all(line.split()[-1] == "0" for line in rows), done.stdout
    print(f"{key}: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU")
