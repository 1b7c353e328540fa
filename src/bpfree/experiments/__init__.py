"""Experiments: runnable scripts (`python -m bpfree.experiments.NAME`) and their helpers.

- `inputs`: teacher input signals (step function, sinusoids, Ornstein–Uhlenbeck noise).
- `lagline`, `lagnet`: GLE teacher–student experiments (Fig. 5 and 6 of "Backpropagation through
  space, time and the brain"), with `bptt` truncated-BPTT baselines.
- `mnist1d`: the seed's MNIST-1D GLE runs (Fig. 8): the end-to-end GLE net and the static LagNet
  under an LE-MLP, an Adam step every dt.
"""
