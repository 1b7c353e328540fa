"""The two departures from the reference code (issue 25), measured on Fashion-MNIST: short runs.

    BPFREE_DATA_DIR=/work/shared/data python bench/departures.py pepita [--epochs 5] [--seeds 3]
    BPFREE_DATA_DIR=/work/shared/data python bench/departures.py pool [--epochs 5] [--seeds 3]

``pepita``: the authors' conv net (Net1conv1fcXL: conv32k5v-pool2 and a readout, relu, no biases), SGD with
momentum 0.9, lr 0.01, batch 50, f_scale 0.05 (their defaults; our init is Glorot, theirs He-uniform):
pepita with its defaults (conv_update 'official', output_error 'auto' = 'first' here), with conv_update
'surrogate' (output 'first', and 'modulated': bpfree's conv defaults before), bp, and bp with the conv
frozen (a readout of random conv features); then the net with a dense layer of 128 after the pooled conv
(conv32k5v-pool2-128; output_error auto = modulated): pepita official, surrogate, and bp.
``pool``: LeNet (conv6k5-pool2-conv16k5-pool2-120-84, tanh), Adam lr 1e-3, batch 60: dfa, sdfa, drtp with
project_before_pool False and True, and bp.

Training on a stratified ``--examples_frac`` of the train split (seed 0), ``--seeds`` runs (seeds 0..k−1:
weights, feedback, shuffling), test accuracy on the whole test split after each epoch; standard scaling
([−1, 1]). Prints a line per run (the test accuracy (%) per epoch, the relative change of the first
layer's kernel ‖W_T − W_0‖/‖W_0‖, the seconds it took) and per configuration (final accuracy, mean ± std).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import numpy as np

PEPITA_NET = "conv32k5v-pool2"
LENET = "conv6k5-pool2-conv16k5-pool2-120-84"


def runs(suite):
    """[(label, rule, arch, rule options, build options, optimizer, lr, batch)]"""
    if suite == "pepita":
        build = dict(activation="relu", use_bias=False)
        return [("pepita (defaults: official, first)", "pepita", PEPITA_NET, {}, build, "sgdm", 0.01, 50),
                ("pepita surrogate, first", "pepita", PEPITA_NET, {"conv_update": "surrogate"}, build, "sgdm", 0.01, 50),
                ("pepita surrogate, modulated (old default)", "pepita", PEPITA_NET,
                 {"conv_update": "surrogate", "output_error": "modulated"}, build, "sgdm", 0.01, 50),
                ("bp", "bp", PEPITA_NET, {}, build, "sgdm", 0.01, 50),
                ("bp, conv frozen (a readout of random conv features)", "bp", PEPITA_NET, {},
                 dict(build, freeze_conv=True), "sgdm", 0.01, 50),
                # a dense PEPITA layer after the pooled conv block (output_error auto = modulated here)
                ("pepita +128 (defaults: official)", "pepita", PEPITA_NET + "-128", {}, build, "sgdm", 0.01, 50),
                ("pepita +128 surrogate", "pepita", PEPITA_NET + "-128", {"conv_update": "surrogate"}, build, "sgdm",
                 0.01, 50),
                ("bp +128", "bp", PEPITA_NET + "-128", {}, build, "sgdm", 0.01, 50)]
    build = dict(activation="tanh")
    out = []
    for rule, lrs in (("dfa", (1e-3,)), ("sdfa", (1e-3,)), ("drtp", (1e-3,))):
        for lr in lrs:
            for before in (False, True):
                out.append((f"{rule} project_before_pool={before} lr {lr:g}", rule, LENET,
                            {"project_before_pool": before}, build, "adam", lr, 60))
    out.append(("bp lr 0.001", "bp", LENET, {}, build, "adam", 1e-3, 60))
    return out


def train(label, rule, arch, rule_options, build, optimizer, lr, batch, data, epochs, seed=0):
    import keras

    from bpfree import build_model

    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    build = dict(build)
    freeze = build.pop("freeze_conv", False)
    model = build_model(rule, arch, x.shape[1:], 10, seed=seed, **build, **rule_options)
    if freeze:
        model.weighted_layers[0].trainable = False
    w0 = keras.ops.convert_to_numpy(model.weighted_layers[0].kernel)
    opt = keras.optimizers.SGD(lr, momentum=0.9) if optimizer == "sgdm" else keras.optimizers.Adam(lr)
    model.compile(optimizer=opt, metrics=["accuracy"])
    start = time.time()
    history = model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=(xt, yt), verbose=0, shuffle=True)
    moved = np.linalg.norm(keras.ops.convert_to_numpy(model.weighted_layers[0].kernel) - w0) / np.linalg.norm(w0)
    acc = [round(100 * float(a), 2) for a in history.history["val_accuracy"]]
    print(f"  {label}, seed {seed}: test acc by epoch {acc}; first kernel moved {moved:.2e}; "
          f"{time.time() - start:.0f} s", flush=True)
    return acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", choices=("pepita", "pool"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples_frac", type=float, default=1 / 3)
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..k−1 (weights, feedback, shuffling)")
    parser.add_argument("--only", default="", help="semicolon-separated label prefixes to run (default: all)")
    args = parser.parse_args(argv)
    import keras

    from bpfree import datasets

    x, y = datasets.load("fmnist", "train", examples_frac=args.examples_frac, seed=0)
    xt, yt = datasets.load("fmnist", "test")
    data = ((x, keras.utils.to_categorical(y, 10)), (xt, keras.utils.to_categorical(yt, 10)))
    print(f"fmnist: {len(x)} training examples (examples_frac {args.examples_frac:.4f}, seed 0), {len(xt)} test; "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}", flush=True)
    for spec in runs(args.suite):
        if args.only and not any(spec[0].startswith(p) for p in args.only.split(";")):
            continue
        final = np.array([train(*spec, data, args.epochs, seed)[-1] for seed in range(args.seeds)])
        print(f"{spec[0]}: final test acc {final.mean():.2f} ± {final.std(ddof=1) if len(final) > 1 else 0:.2f} "
              f"(seeds {final.tolist()})", flush=True)


if __name__ == "__main__":
    main()
