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


def most_rounds(points, schedule):
    """`schedule` (`brackets`) with each round's n replaced by the most configurations it trains over `points`
    grid points: a bracket's first round draws min(n, points not yet drawn), a later round keeps min(n, the
    round before's). The oracle trains no more: a round keeps fewer where configurations diverged or failed."""
    left, out = points, []
    for bracket, rounds in schedule:
        kept, sized = min(rounds[0][0], left), []
        left -= kept
        for n, budget in rounds:
            kept = min(n, kept)
            sized.append((kept, budget))
        out.append((bracket, sized))
    return out


def most_execution_epochs(points, schedule, executions=1):
    """(configurations, execution-epochs): the most a Hyperband `schedule` over `points` grid points can train
    (`most_rounds`), each configuration `executions` times; a kept configuration trains from the previous
    round's budget to its own (it extends its executions)."""
    drawn = epochs = 0
    for _, rounds in most_rounds(points, schedule):
        drawn += rounds[0][0]
        epochs += sum(n * (budget - previous) for (n, budget), previous in zip(rounds, [0] + [r for _, r in rounds]))
    return drawn, epochs * executions
