"""Input pipeline speed beside the training step's: the pipeline must never be the bottleneck.

    python bench/pipeline.py [--batch 64] [--batches 5000]

Measures batches/s (and samples/s) of `bpfree.datasets.pipeline` iterated on its own for mnist1d and
for MNIST through `tfds.testing.mock_data` (60000 random 28×28 images, as the real set is shaped; no
network here), training and evaluation mode, and a 784-500-500-500-10 dfa/bp train step's samples/s
on the same batches. The ratio column is pipeline samples/s ÷ the fastest train step's samples/s
(target ≥ 10).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import keras  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from bpfree import build_model, datasets  # noqa: E402


def rate(ds, min_batches):
    """(batches/s, samples/s) of iterating `ds` for whole epochs until `min_batches`, after a warm-up."""
    per_epoch = sum(1 for _ in ds)
    batches = samples = 0
    start = time.perf_counter()
    for _ in range(-(-min_batches // per_epoch)):
        for x, _ in ds:
            batches += 1
            samples += int(x.shape[0])
    elapsed = time.perf_counter() - start
    return batches / elapsed, samples / elapsed


def train_rate(rule, ds, features, classes, epochs):
    model = build_model(rule, "500-500-500", features, classes, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=True)
    model.fit(ds.take(5), verbose=0, shuffle=False)
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
                               data_dir=data_dir, download=False).take(300).cache()
        step = max(train_rate(rule, ds, 784, 10, 3) for rule in ("dfa", "bp"))

    print(f"batch {args.batch}; fastest 784-500-500-500-10 train step (dfa/bp, XLA): {step:.0f} samples/s")
    print("| dataset | mode | batches/s | samples/s | × train step |")
    print("|---|---|---|---|---|")
    for label, mode, bps, sps in rows:
        print(f"| {label} | {mode} | {bps:.0f} | {sps:.0f} | {sps / step:.1f} |")


if __name__ == "__main__":
    main()
