"""The keras-tuner HyperModel: every hparam of the space as a Choice (or Fixed), one compiled model."""

import keras_tuner

from bpfree import optimizers, rules
from bpfree.metrics import UnexplainedVariance
from bpfree.tuning.point_model import point_model


class BpfreeHyperModel(keras_tuner.HyperModel):
    """Builds the grid point's model (`bpfree.tuning.point_model`) from hparams, compiled with the search's optimizer (Adam) at lr and
    error_rate (classification) or unexplained_variance (reconstruction: `bpfree.metrics.UnexplainedVariance`).

    Choices come from the search space (whose algorithm values come from the rule registry), so a
    rule added to the registry is searchable without touching this class. A rule's own hparams
    (`Rule.hparams()`) are declared under a condition on the algorithm.

    `input_shape` is the dataset's (an image shape, or a number of features): a conv arch or a builder
    gets it whole, a dense arch its number of features (`bpfree.tuning.inputs.input_dim`).
    """

    def __init__(self, space, config, input_shape, output_dim, **kwargs):
        super().__init__(name="bpfree", **kwargs)
        self.space = space
        self.config = config
        self.input_shape = input_shape
        self.output_dim = output_dim

    def declare(self, hp):
        values = {}
        for name, choices in self.space.values:
            if len(choices) == 1:
                values[name] = hp.Fixed(name, choices[0])
            else:
                values[name] = hp.Choice(name, list(choices), ordered=name in ("lr", "dropout"))
        # One hparam per name, active for every rule that has it: keras-tuner keys values by name, so
        # the same name declared under one scope per rule would be dropped for all but the last.
        owners = {}
        for algorithm in self.space.as_dict()["algorithm"]:
            rule = rules.rule_class(algorithm)
            for extra, default in rule.hparams().items():
                choices = rule.search_values.get(extra, (default,))
                owners.setdefault(extra, []).append((algorithm, self.space.extra_values(algorithm)[extra], choices))
        for extra, uses in owners.items():
            algorithms = [a for a, _, _ in uses]
            options = list(dict.fromkeys(v for _, searched, choices in uses for v in (*searched, *choices)))
            with hp.conditional_scope("algorithm", algorithms):
                value = hp.Choice(extra, options, default=uses[0][1][0])  # the space's first
            if values["algorithm"] in algorithms:
                values[extra] = value
        return values

    def declare_hyperparameters(self, hp):
        self.declare(hp)

    def build(self, hp, seed=None):
        values = self.declare(hp)
        c = self.config
        model = point_model(values, c, self.input_shape, self.output_dim, c.seed if seed is None else seed)
        metrics = ["error_rate"] if c.problem_type == "classification" else [UnexplainedVariance(self.output_dim)]
        momentum = {"momentum": c.momentum} if c.momentum else {}  # SGD's; SearchConfig allows it with sgd only
        model.compile(optimizer=optimizers.get(c.optimizer, values["lr"], **momentum), metrics=metrics,
                      jit_compile=c.jit_compile)
        return model
