"""Hyperband's schedule (`brackets`, keras-tuner's formulas) and the most training it can ask for
(`most_execution_epochs`): pure arithmetic, loaded before TensorFlow to size a search (`bpfree.tuning.plan`).
The oracle that runs it is `bpfree.tuning.hyperband`."""

import math


def brackets(max_epochs, factor, iterations=1):
    """keras-tuner's Hyperband schedule: [(bracket s, [(n, r) of each round])], in the order it runs them
    (s from the largest down to 0, `iterations` times): round k of bracket s starts or keeps n configurations
    and trains them to r epochs. keras-tuner's `HyperbandOracle` formulas (see the module docstring)."""
    count, epochs = 0, max_epochs
    while epochs >= 1:  # _get_num_brackets, its min_epochs = 1
        epochs = epochs / factor
        count += 1
    end = math.ceil(1 + math.log(max_epochs, factor))  # _get_size's bracket0_end_size

    def size(s, k):  # _get_size
        return math.ceil(end / (s + 1) * factor ** (s - k))

    def budget(s, k):  # _get_epochs
        return math.ceil(max_epochs / factor ** (s - k))

    return [(s, [(size(s, k), budget(s, k)) for k in range(s + 1)]) for _ in range(iterations)
            for s in range(count - 1, -1, -1)]


def most_execution_epochs(points, schedule, executions=1):
    """(configurations, execution-epochs): the most a Hyperband `schedule` (`brackets`) over `points` grid points
    can train, each configuration `executions` times: a bracket's first round draws min(n, points not yet
    drawn), a later round keeps min(n, the round before's), and a kept configuration trains from the previous
    round's budget to its own (it extends its executions). The oracle trains no more than that: a round keeps
    fewer where configurations diverged or failed."""
    left, drawn, epochs = points, 0, 0
    for _, rounds in schedule:
        kept, trained = None, 0
        for n, budget in rounds:
            kept = min(n, left) if kept is None else min(n, kept)
            if trained == 0:
                left -= kept
                drawn += kept
            epochs += kept * (budget - trained)
            trained = budget
    return drawn, epochs * executions
