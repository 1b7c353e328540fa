"""Experiments: runnable scripts (`python -m bpfree.experiments.NAME`) and their helpers.

- `inputs`: teacher input signals (step function, sinusoids, Ornstein–Uhlenbeck noise).
- `lagline`, `lagnet`: GLE teacher–student experiments (Fig. 5 and 6 of "Backpropagation through
  space, time and the brain"), with `bptt` truncated-BPTT baselines.
"""
