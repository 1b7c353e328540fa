"""Throughput of K members trained as one `StackedMembers` step against K models trained one after another.

    python bench/stacked_step.py [--rule dfa] [--archs 784-256-256-10,784-500-500-10] [--ks 1,4,8]
                                 [--batch 64] [--steps 40] [--reps 3] [--xla both|on|off]

For every arch (input-hidden...-output widths), XLA setting and K: the stack is K members (own seeds,
own Adam learning rates) fitted on `--steps` stacked batches of shape (K, batch, ...); the reference is
the same K models, each fitted on the same `--steps` batches one after another (the search's one
execution at a time). Both go through `fit` on in-memory tf.data, so both pay the same per-step loop.
Repetitions are interleaved (stack and reference alternate, the order flipped each repetition); the
table gives member-steps/s (K · steps / time, median over repetitions) and the median of the
per-repetition ratios stacked / separate, by wall time and by process CPU time (TensorFlow's threads
of this process; steadier than wall time on a shared machine).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bpfree import build_model  # noqa: E402
from bpfree.models.stacked import StackedMembers  # noqa: E402


def members(rule, arch, k, xla):
    widths = [int(w) for w in arch.split("-")]
    hidden = "-".join(map(str, widths[1:-1]))
    models = []
    for i in range(k):
        m = build_model(rule, hidden, widths[0], widths[-1], activation="tanh", seed=10 + i)
        m.compile(optimizer=keras.optimizers.Adam(1e-4 * (i + 1)), metrics=["error_rate"], jit_compile=xla)
        models.append(m)
    return models


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(rule, arch, k, xla, batch, steps, reps):
    widths = [int(w) for w in arch.split("-")]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * batch, widths[0])).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, widths[-1], steps * batch), widths[-1]).astype("float32")
    one = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    xs = np.broadcast_to(x.reshape(steps, 1, batch, -1), (steps, k, batch, widths[0]))
    ys = np.broadcast_to(y.reshape(steps, 1, batch, -1), (steps, k, batch, widths[-1]))
    stacked_data = tf.data.Dataset.from_tensor_slices((xs, ys)).cache()

    stack = StackedMembers(members(rule, arch, k, xla))
    stack.compile(metrics=["error_rate"], jit_compile=xla)
    separate = members(rule, arch, k, xla)

    def run_stack():
        stack.fit(stacked_data, epochs=1, verbose=0)

    def run_separate():
        for m in separate:
            m.fit(one, epochs=1, verbose=0)

    run_stack(), run_separate()  # trace and compile; fill the caches
    times = {"stack": [], "separate": []}
    for r in range(reps):
        order = ("stack", "separate") if r % 2 == 0 else ("separate", "stack")
        for name in order:
            times[name].append(timed(run_stack if name == "stack" else run_separate))
    rate = {n: statistics.median(k * steps / w for w, _ in t) for n, t in times.items()}
    wall_ratio = statistics.median(p[0] / s[0] for s, p in zip(times["stack"], times["separate"]))
    cpu_ratio = statistics.median(p[1] / s[1] for s, p in zip(times["stack"], times["separate"]) if s[1] > 0)
    return rate["stack"], rate["separate"], wall_ratio, cpu_ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="dfa")
    parser.add_argument("--archs", default="784-256-256-10,784-500-500-10")
    parser.add_argument("--ks", default="1,4,8")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--xla", default="both", choices=("both", "on", "off"))
    args = parser.parse_args()
    xlas = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    print(f"rule {args.rule}, batch {args.batch}, {args.steps} steps a fit, {args.reps} interleaved repetitions, "
          f"device {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}")
    print(f"{'arch':<16} {'xla':<4} {'K':>2} {'stacked m-steps/s':>18} {'separate m-steps/s':>19} "
          f"{'speedup (wall)':>15} {'speedup (cpu)':>14}")
    for arch in args.archs.split(","):
        for xla in xlas:
            for k in (int(v) for v in args.ks.split(",")):
                stacked, separate, wall, cpu = bench(args.rule, arch, k, xla, args.batch, args.steps, args.reps)
                print(f"{arch:<16} {'on' if xla else 'off':<4} {k:>2} {stacked:>18.0f} {separate:>19.0f} "
                      f"{wall:>15.2f} {cpu:>14.2f}", flush=True)
                keras.backend.clear_session()


if __name__ == "__main__":
    main()
