"""Input pipeline speed beside the training step's: the pipeline must never be the bottleneck.

    python bench/pipeline.py [--batch 64] [--batches 5000]

Measures batches/s (and samples/s) of `bpfree.datasets.pipeline` iterated on its own for mnist1d and
for MNIST through `tfds.testing.mock_data` (60000 random 28×28 images, as the real set is shaped; no
network here), training and evaluation mode, and a 784-500-500-500-10 dfa/bp train step's samples/s
on the same batches (batches consumed inside a tf.function, as fit does). The ratio column is pipeline samples/s ÷ the fastest train step's samples/s
(target ≥ 10).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

from bpfree import build_model, datasets


def rate(ds, min_batches):
    """(batches/s, samples/s) of `ds` for whole epochs until `min_batches`, after a warm-up epoch.

    Batches are consumed inside one `tf.function` (a new iterator per epoch, as `fit` makes), so
    the time is the pipeline's, not a Python loop's over eager tensors.
    """

    @tf.function
    def consume(epochs):
        batches = tf.constant(0, tf.int64)
        samples = tf.constant(0, tf.int64)
        for _ in tf.range(epochs):
            for x, _ in ds:
                batches += 1
                samples += tf.cast(tf.shape(x)[0], tf.int64)
        return batches, samples

    per_epoch = int(consume(1)[0])
    epochs = -(-min_batches // per_epoch)
    start = time.perf_counter()
    batches, samples = (int(v) for v in consume(epochs))
    elapsed = time.perf_counter() - start
    return batches / elapsed, samples / elapsed


def train_rate(rule, ds, features, classes, epochs):
    model = build_model(rule, "500-500-500", features, classes, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=True)
    model.fit(ds, verbose=0, shuffle=False)  # a whole epoch: XLA compiles the last, partial batch too
    per_epoch = sum(int(x.shape[0]) for x, _ in ds)  # (ds is cached: fit's epochs cost no input time)
    start = time.perf_counter()
    for _ in range(epochs):
        model.fit(ds, verbose=0, shuffle=False)
    return epochs * per_epoch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=5000, help="batches timed per pipeline (whole epochs)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as data_dir, tfds.testing.mock_data(num_examples=60000):
        sources = {
            "mnist1d": dict(name="mnist1d"),
            "mnist (mock)": dict(name="mnist", data_dir=data_dir, download=False),
        }
        for label, kwargs in sources.items():
            for training in (True, False):
                ds = datasets.pipeline(split="train", batch_size=args.batch, training=training, seed=0, **kwargs)
                bps, sps = rate(ds, args.batches)
                rows.append((label, "train" if training else "eval", bps, sps))
        ds = datasets.pipeline(name="mnist", split="train", batch_size=args.batch, training=True, seed=0,
                               data_dir=data_dir, download=False).take(300)
        step = max(train_rate(rule, ds.cache(), 784, 10, 3) for rule in ("dfa", "bp"))
        # The decisive check: fit fed by the live pipeline against fit fed by ready-made batches.
        fed = {}
        for label, kwargs, features in (("mnist1d", dict(name="mnist1d"), 40),
                                        ("mnist (mock)", dict(name="mnist", data_dir=data_dir, download=False), 784)):
            live = datasets.pipeline(split="train", batch_size=args.batch, training=True, seed=0, **kwargs)
            ready = live.take(-1).cache()
            for _ in ready:
                pass
            fed[label] = (train_rate("dfa", live, features, 10, 5), train_rate("dfa", ready, features, 10, 5))

    print(f"batch {args.batch}; fastest 784-500-500-500-10 train step (dfa/bp, XLA): {step:.0f} samples/s")
    print("| dataset | mode | batches/s | samples/s | × train step |")
    print("|---|---|---|---|---|")
    for label, mode, bps, sps in rows:
        print(f"| {label} | {mode} | {bps:.0f} | {sps:.0f} | {sps / step:.1f} |")
    print()
    print("dfa 500-500-500 fit, samples/s: | dataset | live pipeline | ready batches | ratio |")
    print("|---|---|---|---|")
    for label, (live, ready) in fed.items():
        print(f"| {label} | {live:.0f} | {ready:.0f} | {live / ready:.2f} |")


if __name__ == "__main__":
    main()
