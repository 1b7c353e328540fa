"""Time a grid search spends outside `fit` (build, compile, tuner bookkeeping, records).

    python bench/search_overhead.py [--arch 500-500] [--trials 8] [--epochs 2] [--dataset digits]

Runs a real grid (algorithms × learning rates, 1 execution each) with the tuning suite; `fit` time
(XLA compilation of the train step included, as it happens inside fit) is summed by the tuner, the
rest of the wall time is overhead. Prints the overhead fraction and seconds per trial. `--mock_mnist`
trains 784-500-500 models on MNIST-shaped data from `tfds.testing.mock_data` (no network here).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from bpfree.tuning import SearchConfig, SearchSpace, run_search


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="500-500")
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--algorithms", default="bp,fa,dfa,drtp")
    parser.add_argument("--lrs", default="1e-3,1e-2")
    parser.add_argument("--mock_mnist", type=int, default=0, help="N mock MNIST examples (dataset mnist)")
    args = parser.parse_args()
    if args.mock_mnist:
        import tensorflow_datasets as tfds

        args.dataset = "mnist"
        os.environ["BPFREE_TFDS_DOWNLOAD"] = "0"
        mock = tfds.testing.mock_data(num_examples=args.mock_mnist)
        mock.__enter__()  # kept referenced until main() returns

    space = {"algorithm": args.algorithms.split(","), "arch": [args.arch], "activation": ["tanh"],
             "batchnorm": [False], "bw_init": ["ortho"], "lr": [float(v) for v in args.lrs.split(",")],
             "dropout": [0.0]}
    config = SearchConfig(dataset=args.dataset, objective="val_error_rate", num_epochs=args.epochs)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        summary = run_search(directory, config, SearchSpace.create(space), log=lambda *a: None)
        total = time.perf_counter() - start
    trials = summary["ran"]
    outside = total - summary["fit_seconds"]
    print(f"dataset {args.dataset}, arch {args.arch}, {args.epochs} epochs, {trials} trials")
    print("| total s | in fit s | outside fit s | outside fraction | outside s per trial |")
    print("|---|---|---|---|---|")
    print(f"| {total:.1f} | {summary['fit_seconds']:.1f} | {outside:.1f} | {outside / total:.1%} | {outside / trials:.2f} |")


if __name__ == "__main__":
    main()
