"""Training throughput of every rule beside a plain Keras model trained by backprop.

    python bench/throughput.py [--arch 784-500-500-500-10] [--batch 64] [--steps 200] [--reps 5]

Each rule trains a `bpfree` Network (tanh, XLA on) on random data; the reference is a
`keras.Sequential` of the same widths trained with `fit`. Models are timed interleaved (rule, rule,
..., reference, then again) in one process so machine noise hits all alike; the table gives the median
samples/s over the repetitions and the ratio to the reference's median, by wall time and by process
CPU time (CPU seconds of all of TensorFlow's threads: far less sensitive to other processes on a
shared machine than wall time, so the ratio column uses it).
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

from bpfree import build_model, rules  # noqa: E402
from bpfree.arch import parse_arch  # noqa: E402

FEEDFORWARD = ("bp", "fa", "dfa", "drtp", "cce", "mse")


def reference_model(widths, activation):
    model = keras.Sequential([keras.Input((widths[0],))]
                             + [keras.layers.Dense(w, activation=activation) for w in widths[1:-1]]
                             + [keras.layers.Dense(widths[-1], activation="softmax")])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="784-500-500-500-10", help="input-hidden...-output widths")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="batches per timed fit")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--rules", default=",".join(r for r in FEEDFORWARD if r in rules.names()))
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()

    widths = parse_arch(args.arch)
    hidden = "-".join(str(w) for w in widths[1:-1])
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.normal(size=(n, widths[0])).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, widths[-1], n), widths[-1]).astype("float32")

    # Batches come from a cached, prefetched tf.data pipeline, as bpfree.datasets.pipeline delivers them.
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache().prefetch(tf.data.AUTOTUNE)
    for _ in data:
        pass  # fill the cache

    models = {}
    for rule in args.rules.split(","):
        models[rule] = build_model(rule, hidden, widths[0], widths[-1], activation=args.activation, seed=0)
    models["keras"] = reference_model(widths, args.activation)
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy",
                      jit_compile=not args.no_xla, steps_per_execution=args.steps_per_execution)
        model.fit(data.take(4), epochs=1, verbose=0, shuffle=False)  # compile

    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(args.reps):
        for name, model in models.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(data, epochs=1, verbose=0, shuffle=False)
            wall[name].append(n / (time.perf_counter() - start))
            cpu[name].append(n / (time.process_time() - start_cpu))

    ref_wall, ref_cpu = statistics.median(wall["keras"]), statistics.median(cpu["keras"])
    print(f"arch {args.arch}, {args.activation}, batch {args.batch}, {args.steps} steps x {args.reps} reps, "
          f"XLA {'off' if args.no_xla else 'on'}, steps_per_execution {args.steps_per_execution}")
    print(f"| model | samples/s (wall, median) | ratio (wall) | samples per CPU-s (median) | ratio (CPU) |")
    print("|---|---|---|---|---|")
    for name in models:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {w:.0f} | {w / ref_wall:.2f} | {c:.0f} | {c / ref_cpu:.2f} |")


if __name__ == "__main__":
    main()
