"""What a per-epoch checkpoint costs next to the epoch it follows.

    python bench/checkpoint_cost.py [--arch 784-500-500-500] [--examples 6000] [--reps 5]

Builds a bp network with Adam on random MNIST-shaped data, then alternates (interleaved, repeated)
one training epoch and one `bpfree.checkpoints.save` of the model and optimizer (what the grid search
writes after every epoch), and prints the median and min of each and their ratio.
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
import numpy as np

from bpfree import build_model, checkpoints


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="500-500-500")
    parser.add_argument("--input_dim", type=int, default=784)
    parser.add_argument("--examples", type=int, default=6000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.examples, args.input_dim)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, args.examples), 10).astype("float32")
    model = build_model("bp", args.arch, args.input_dim, 10, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # compile once
    params = sum(int(np.prod(v.shape)) for v in checkpoints.state_variables(model))
    epoch_s, save_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "execution_0.ckpt.npz")
        for _ in range(args.reps):
            t = time.perf_counter()
            model.fit(x, y, batch_size=64, epochs=1, verbose=0)
            epoch_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            checkpoints.save(path, model, 1, {"loss": [0.0]})
            save_s.append(time.perf_counter() - t)
        size = os.path.getsize(path)
    print(f"model {args.input_dim}-{args.arch}-10 (bp, Adam): {params:,} saved values, checkpoint {size / 1e6:.1f} MB")
    print(f"{'':>12} {'median s':>9} {'min s':>7}")
    print(f"{'epoch':>12} {statistics.median(epoch_s):9.3f} {min(epoch_s):7.3f}   ({args.examples} examples, batch 64)")
    print(f"{'checkpoint':>12} {statistics.median(save_s):9.3f} {min(save_s):7.3f}")
    print(f"checkpoint / epoch: median {statistics.median(s / e for s, e in zip(save_s, epoch_s)):.3f}")


if __name__ == "__main__":
    main()
