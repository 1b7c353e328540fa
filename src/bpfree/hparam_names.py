"""The hparams every grid point has, whatever its rule, by long name (in grid order) and short name.

A grid point's other hparams are its rule's own (`bpfree.rules.base.Rule.hparams`). Kept apart from
`bpfree.tuning.space` so that `bpfree.results` tells them apart without importing the rules (Keras).
"""

# The common hparams, by their long names, in grid order (the last varies fastest).
HPARAMS = ("algorithm", "arch", "activation", "batchnorm", "bw_init", "lr", "dropout")
# Their prefixes in trial ids and project names ("bn", "bw", "lr", "do"; none for the first three).
SHORT = {"algorithm": "", "arch": "", "activation": "", "batchnorm": "bn", "bw_init": "bw", "lr": "lr",
         "dropout": "do"}
