"""Training throughput of every rule beside a plain Keras model of the same layers trained by backprop.

    python bench/throughput.py [--nets dense,lenet,cifar,resnet20] [--rules fa,dfa,...] [--batch 64] [--steps N]
                               [--reps 5] [--arch 784-500-500-500-10] [--converted]

Nets (``--nets``, comma-separated):
- ``dense``: ``--arch`` (input-hidden...-output widths, default 784-500-500-500-10), flat inputs;
- ``lenet``: LeNet-5, conv6k5-pool2-conv16k5-pool2-120-84 on 28×28×1, 10 classes;
- ``cifar``: conv32k3-pool2-conv64k3-pool2-256 on 32×32×3, 10 classes;
- ``resnet20``: ResNet-20 (`bpfree.models.resnet`, batch norm, option-A shortcuts) on 32×32×3, 10 classes:
  each rule trains `bpfree.convert(resnet20(), rule)`; the reference is the same Keras ResNet-20.
``--converted`` adds, on dense/lenet/cifar, each rule's `bpfree.convert` of the reference model beside its
arch-string Network (the same network: the column "vs arch string" is the cost of conversion per step).
Rules: ``--rules`` (default: the feedforward rules on dense, `bpfree.rules.convolutional_names()` on
the conv nets; a conv net skips the rules that train dense networks only).

Each rule trains a `bpfree` Network (tanh, XLA on) on random data; the reference is a `keras.Sequential`
of the same layers (Dense, or Conv2D 'same' → MaxPooling2D → ... → Flatten → Dense) trained with `fit`,
compiled the same way. Per net, the models are timed interleaved in one process (every model once per
repetition, the order rotated from one repetition to the next), so machine noise hits all alike; each
repetition gives a ratio rule / reference from the two timings of that repetition, and the table gives
the median of those ratios (and the median samples/s), by wall time and by process CPU time (CPU
seconds of all of TensorFlow's threads: far less sensitive to other processes on a shared machine).
On a 2-core machine shared with other jobs a fit's wall rate is bimodal (all cores, or 1/2 or 2/3 of
them: the same model measured 402 and 805 samples/s on the cifar net within one run), which is why each
ratio pairs the two timings of one repetition; trust the CPU ratio there.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras
import numpy as np
import tensorflow as tf

from bpfree import build_model, convert, rules
from bpfree.models.resnet import resnet20
from bpfree.arch import ConvSpec, parse_arch, parse_layers

FEEDFORWARD = ("bp", "fa", "dfa", "drtp", "cce", "mse")
# name -> (hidden arch, input shape, classes); "dense" takes --arch
CONV_NETS = {
    "lenet": ("conv6k5-pool2-conv16k5-pool2-120-84", (28, 28, 1), 10),
    "cifar": ("conv32k3-pool2-conv64k3-pool2-256", (32, 32, 3), 10),
    "resnet20": (None, (32, 32, 3), 10),
}
# Batches per timed fit when --steps is not given: about 1-2 s per fit each on 2 idle CPU cores.
DEFAULT_STEPS = {"dense": 200, "lenet": 60, "cifar": 16, "resnet20": 4}
POOLS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


def reference_model(hidden, input_shape, classes, activation):
    """The plain Keras model of the same layers as bpfree's Network of `hidden` (an arch string)."""
    layers = [keras.Input(input_shape)]
    flat = len(input_shape) == 1
    for block in parse_layers(hidden):
        if isinstance(block, ConvSpec):
            layers.append(keras.layers.Conv2D(block.filters, block.kernel, strides=block.stride, padding="same",
                                              activation=activation))
            layers += [POOLS[kind](size) for kind, size in block.pools]
        else:
            if not flat:
                layers.append(keras.layers.Flatten())
                flat = True
            layers.append(keras.layers.Dense(block, activation=activation))
    if not flat:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def bench_net(label, hidden, input_shape, classes, rule_names, args):
    steps = args.steps or DEFAULT_STEPS[label]
    rng = np.random.default_rng(0)
    n = args.batch * steps
    x = rng.normal(size=(n, *input_shape)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, classes, n), classes).astype("float32")
    # Batches come from a cached, prefetched tf.data pipeline, as bpfree.datasets.pipeline delivers them.
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache().prefetch(tf.data.AUTOTUNE)
    for _ in data:
        pass  # fill the cache

    input_dim = input_shape[0] if len(input_shape) == 1 else input_shape
    models = {}
    if hidden is None:  # resnet20: every rule on the converted Keras model
        for rule in rule_names:
            models[rule] = convert(resnet20(input_shape, classes, seed=0), rule, seed=0)
        models["keras"] = resnet20(input_shape, classes, seed=0)
    else:
        for rule in rule_names:
            models[rule] = build_model(rule, hidden, input_dim, classes, activation=args.activation, seed=0)
            if args.converted:
                models[f"{rule} (converted)"] = convert(reference_model(hidden, input_shape, classes, args.activation),
                                                        rule, seed=0)
        models["keras"] = reference_model(hidden, input_shape, classes, args.activation)
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy",
                      jit_compile=not args.no_xla, steps_per_execution=args.steps_per_execution)
        model.fit(data.take(4), epochs=1, verbose=0, shuffle=False)  # compile

    names = list(models)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            models[name].fit(data, epochs=1, verbose=0, shuffle=False)
            wall[name].append(n / (time.perf_counter() - start))
            cpu[name].append(n / (time.process_time() - start_cpu))

    def ratio(series, name, reference="keras"):
        return statistics.median(a / b for a, b in zip(series[name], series[reference]))

    print(f"\n{label}: {hidden or 'ResNet-20'} on {input_shape} → {classes}, {args.activation}, batch {args.batch}, "
          f"{steps} steps x {args.reps} reps, XLA {'off' if args.no_xla else 'on'}, "
          f"steps_per_execution {args.steps_per_execution}")
    converted = any(name.endswith(" (converted)") for name in names)
    print("| model | samples/s (wall, median) | ratio (wall, median) | samples per CPU-s (median) "
          "| ratio (CPU, median) |" + (" vs arch string (wall, CPU) |" if converted else ""))
    print("|---|---|---|---|---|" + ("---|" if converted else ""))
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        twin = name.removesuffix(" (converted)")
        extra = ""
        if converted:
            extra = (f" {ratio(wall, name, twin):.3f}, {ratio(cpu, name, twin):.3f} |" if twin != name else " |")
        print(f"| {name} | {w:.0f} | {ratio(wall, name):.2f} | {c:.0f} | {ratio(cpu, name):.2f} |{extra}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="dense,lenet,cifar", help="dense, lenet, cifar (comma-separated)")
    parser.add_argument("--arch", default="784-500-500-500-10", help="the dense net: input-hidden...-output widths")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None,
                        help="batches per timed fit (default: dense 200, lenet 60, cifar 16)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--rules", default=None,
                        help="comma-separated (default: the feedforward rules on dense, every conv-capable rule "
                             "on the conv nets)")
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--converted", action="store_true",
                        help="also time each rule's bpfree.convert of the reference model (dense, lenet, cifar)")
    args = parser.parse_args()

    chosen = args.rules.split(",") if args.rules else None
    for net in args.nets.split(","):
        if net == "dense":
            widths = parse_arch(args.arch)
            hidden = "-".join(str(w) for w in widths[1:-1])
            names = chosen or [r for r in FEEDFORWARD if r in rules.names()]
            bench_net(net, hidden, (widths[0],), widths[-1], names, args)
        elif net in CONV_NETS:
            hidden, shape, classes = CONV_NETS[net]
            conv = rules.convolutional_names()
            names = [r for r in chosen if r in conv] if chosen else list(conv)
            bench_net(net, hidden, shape, classes, names, args)
        else:
            parser.error(f"unknown net {net!r} (valid: dense, {', '.join(CONV_NETS)})")


if __name__ == "__main__":
    main()
