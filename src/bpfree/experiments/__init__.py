"""Experiments: the paper scripts (`python -m bpfree.experiments.NAME`), thin entry points over the package.

- `lagline`, `lagnet`: GLE teacher–student experiments (Fig. 5 and 6 of "Backpropagation through
  space, time and the brain") over `bpfree.teacher_student`, with `bpfree.models.bptt` truncated-BPTT
  baselines and `bpfree.datasets.signals` inputs.
- `mnist1d`: the seed's MNIST-1D GLE runs (Fig. 8, `bpfree.models.gle_mnist1d`): the end-to-end GLE net
  and the static LagNet under an LE-MLP, an Adam step every dt.
- `entry`: their one command line (flags from the config, exit 2 on bad input, 3 on a crash).
"""
