"""Speed at the scale of the published tables (issue 21): biotorch's LeNet on real MNIST (60,000 examples).

    BPFREE_DATA_DIR=../shared/data python bench/lenet_mnist.py [--parts search,rules] [--reps 2]
        [--epochs 5] [--rules bp,fa,dfa,...] [--examples_frac 0]

Both parts use the protocol of ``hparams/benchmarks/biotorch_lenet.toml`` (valid-padded LeNet on 32×32 inputs,
ReLU, Xavier weights, SGD momentum 0.9, weight decay, batch 64), through the same data the search loads.

``search``: a grid of bp, fa, dfa × 3 learning rates × 2 seeds, ``--epochs`` epochs, (a) through the default
search path (`bpfree.tuning.run_search`: records, checkpoints, TensorBoard, validation every epoch, test at the
end) against (b) the same executions trained one at a time by plain Keras ``fit`` on the same models
(`bpfree.build_model` with each execution's seed, the same optimizer, a ``tf.data`` pipeline of the same arrays,
``validation_data`` every epoch, ``evaluate`` on test at the end; no records). Each repetition runs both, the
order alternating; each search starts from scratch in a fresh temporary directory. Reports wall and CPU
seconds, executions per hour, the ratio (search / fit), and the search's time inside its training programs
against the rest (its summary's ``fit_seconds``).

``rules``: samples/s of one epoch over the 60,000 training examples per rule, against a plain Keras
``Sequential`` of the same layers trained by backprop with ``fit``, interleaved (the order rotated each
repetition), wall and CPU; the ratio of each repetition's pair, median.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras
import tensorflow as tf

from bpfree import build_model, datasets, optimizers
from bpfree.benchmarks import runner
from bpfree.benchmarks.specs import TABLES
from bpfree.tuning import SearchConfig, SearchSpace, run_search

TABLE = TABLES["biotorch_lenet"]
LRS = (1e-3, 1e-2, 1e-1)


def protocol(epochs, executions, algorithms, examples_frac):
    search, space = runner.settings(TABLE, "mnist", "full")
    search.update(num_epochs=epochs, executions_per_trial=executions, test_each_epoch=False,
                  examples_frac=examples_frac, lr_schedule="constant")
    search.pop("lr_milestones", None)
    space.update(algorithm=list(algorithms), lr=list(LRS))
    config = SearchConfig.from_settings(search, source=TABLE.preset)
    return config, SearchSpace.create(space, tune_dropout=config.tunes_dropout)


def load(config):
    common = dict(scaler=config.scaler, validation_frac=config.validation_frac, input_size=config.input_size,
                  resize=config.resize)
    train = datasets.load(config.dataset, "train", examples_frac=config.examples_frac, seed=config.seed, **common)
    validation = datasets.load(config.dataset, "validation", **common)
    test = datasets.load(config.dataset, "test", **common)
    return [(x, keras.utils.to_categorical(y, 10).astype("float32")) for x, y in (train, validation, test)]


def cpu_seconds():
    return time.process_time()


def search_path(config, space):
    with tempfile.TemporaryDirectory() as directory:
        start, cpu = time.perf_counter(), cpu_seconds()
        summary = run_search(directory, config, space, log=lambda *a: None)
        return time.perf_counter() - start, cpu_seconds() - cpu, summary["fit_seconds"]


def fit_path(config, space, arrays):
    (x, y), validation, test = arrays
    start, cpu = time.perf_counter(), cpu_seconds()
    for point in space.grid():
        for k in range(config.executions_per_trial):
            seed = config.seed + k
            model = build_model(point["algorithm"], point["arch"], x.shape[1:], 10, activation=point["activation"],
                                bw_init=point["bw_init"], weight_decay=config.weight_decay, seed=seed)
            model.compile(optimizer=optimizers.get(config.optimizer, point["lr"], momentum=config.momentum),
                          metrics=["error_rate"], jit_compile=config.jit_compile)
            train = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
                     .batch(config.batch_size).prefetch(tf.data.AUTOTUNE))
            model.fit(train, validation_data=validation, batch_size=config.batch_size,
                      epochs=config.num_epochs, verbose=0)
            model.evaluate(*test, batch_size=config.batch_size, verbose=0)
            keras.backend.clear_session(free_memory=False)
    return time.perf_counter() - start, cpu_seconds() - cpu


def bench_search(args):
    config, space = protocol(args.epochs, 2, ("bp", "fa", "dfa"), args.examples_frac)
    arrays = load(config)
    executions = space.size() * config.executions_per_trial
    rows = {"search": [], "fit": []}
    for rep in range(args.reps):
        for path in (("search", "fit") if rep % 2 == 0 else ("fit", "search")):
            if path == "search":
                rows["search"].append(search_path(config, space))
            else:
                rows["fit"].append(fit_path(config, space, arrays))
            print(f"  rep {rep} {path}: {rows[path][-1][0]:.0f} s wall, {rows[path][-1][1]:.0f} s CPU", flush=True)
    print(f"\nsearch: LeNet (valid, 32×32) on MNIST ({len(arrays[0][0])} train), bp/fa/dfa × {len(LRS)} lr × 2 seeds "
          f"= {executions} executions × {config.num_epochs} epochs, {args.reps} rep(s)")
    print("| path | wall s median | wall s min | CPU s median | executions/h (median wall) | search / fit (wall, per rep) "
          "| search / fit (CPU, per rep) |")
    print("|---|---|---|---|---|---|---|")
    for path in ("search", "fit"):
        walls, cpus = [r[0] for r in rows[path]], [r[1] for r in rows[path]]
        wall_ratio = [a[0] / b[0] for a, b in zip(rows["search"], rows["fit"])]
        cpu_ratio = [a[1] / b[1] for a, b in zip(rows["search"], rows["fit"])]
        ratios = (f"{statistics.median(wall_ratio):.2f} (" + ", ".join(f"{r:.2f}" for r in wall_ratio) + ")",
                  f"{statistics.median(cpu_ratio):.2f}") if path == "search" else ("1", "1")
        print(f"| {path} | {statistics.median(walls):.0f} | {min(walls):.0f} | {statistics.median(cpus):.0f} | "
              f"{3600 * executions / statistics.median(walls):.0f} | {ratios[0]} | {ratios[1]} |")
    inside = statistics.median(r[2] for r in rows["search"])
    total = statistics.median(r[0] for r in rows["search"])
    print(f"\nsearch time inside its training programs (fit_seconds): {inside:.0f} s of {total:.0f} s "
          f"({100 * inside / total:.0f} %); the rest: data loading, model builds, records, checkpoints, keras-tuner.")


def reference_model(input_shape):
    """Plain Keras LeNet (biotorch's LeNetMNIST) trained by backprop."""
    L = keras.layers
    return keras.Sequential([
        keras.Input(input_shape), L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.Conv2D(120, 5, activation="relu"), L.Flatten(),
        L.Dense(84, activation="relu"), L.Dense(10, activation="softmax")])


def bench_rules(args):
    config, space = protocol(1, 1, args.rules.split(","), 0.0)
    x, y = datasets.load(config.dataset, "train", scaler=config.scaler, input_size=config.input_size,
                         resize=config.resize)
    y = keras.utils.to_categorical(y, 10).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size).cache().prefetch(tf.data.AUTOTUNE)
    for _ in data:
        pass
    point = space.grid()[0]
    models = {}
    for rule in args.rules.split(","):
        models[rule] = build_model(rule, point["arch"], x.shape[1:], 10, activation="relu", bw_init="xavier",
                                   weight_decay=config.weight_decay, seed=0)
    models["keras"] = reference_model(x.shape[1:])
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9), loss="categorical_crossentropy",
                      jit_compile=config.jit_compile)
        model.fit(data.take(8), epochs=1, verbose=0)
    names = list(models)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start, start_cpu = time.perf_counter(), cpu_seconds()
            models[name].fit(data, epochs=1, verbose=0)
            wall[name].append(len(x) / (time.perf_counter() - start))
            cpu[name].append(len(x) / (cpu_seconds() - start_cpu))

    def ratio(series, name):
        return statistics.median(a / b for a, b in zip(series[name], series["keras"]))

    print(f"\nrules: one epoch of {len(x)} MNIST examples (32×32), batch {config.batch_size}, {args.reps} reps")
    print("| model | samples/s (wall, median) | / keras BP (wall) | samples per CPU-s (median) | / keras BP (CPU) |")
    print("|---|---|---|---|---|")
    for name in names:
        print(f"| {name} | {statistics.median(wall[name]):.0f} | {ratio(wall, name):.2f} | "
              f"{statistics.median(cpu[name]):.0f} | {ratio(cpu, name):.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="search,rules")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--examples_frac", type=float, default=0.0, help="of train, for a quicker look (0: all)")
    parser.add_argument("--rules", default="bp,fa,usf,brsf,frsf,kp,dfa,sdfa,drtp,pepita")
    args = parser.parse_args()
    for part in args.parts.split(","):
        {"search": bench_search, "rules": bench_rules}[part](args)


if __name__ == "__main__":
    main()
