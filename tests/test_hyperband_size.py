"""A Hyperband search's size (`plan.HyperbandSize`): the most its brackets can train, which the `--yes` gate and
the dry run use instead of points × executions × num_epochs (a bound its brackets never come near)."""

import random

import pytest

from bpfree.tuning import plan
from bpfree.tuning.config import SearchConfig
from bpfree.tuning.hyperband import successive_halving
from bpfree.tuning.hyperband_schedule import brackets, most_execution_epochs
from bpfree.tuning.space import SearchSpace


@pytest.mark.parametrize("points, max_epochs, factor", [(100, 9, 3), (6, 4, 2), (3, 27, 3), (40, 10, 2), (1, 5, 4)])
def test_the_bound_is_what_the_schedule_trains_when_every_configuration_scores(points, max_epochs, factor):
    """Every configuration scored (none diverged): the oracle's own sequence trains exactly the bound (each
    configuration from its previous round's budget to its last)."""
    schedule = brackets(max_epochs, factor)
    made_up = random.Random(0)
    scores = {}

    def result(configuration, epochs):
        return True, scores.setdefault((configuration, epochs), made_up.random())

    steps, pending = successive_halving(schedule, list(range(points)), result)
    assert not pending
    furthest = {}
    for configuration, _, _, epochs in steps:
        furthest[configuration] = max(epochs, furthest.get(configuration, 0))
    drawn, most = most_execution_epochs(points, schedule, executions=2)
    assert (drawn, most) == (len(furthest), 2 * sum(furthest.values()))


def test_a_hyperband_search_is_sized_by_its_brackets_not_by_its_grid():
    space = SearchSpace.create({"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
                                "bw_init": ["ortho"], "lr": [10 ** (-k / 10) for k in range(10, 60)],
                                "dropout": [0.0]})
    grid = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=300)
    hyperband = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=300, search="hyperband",
                             max_trials=50, hyperband_factor=3)
    assert plan.GridSize.of(space, grid).execution_epochs == 50 * 300 > plan.ASK_ABOVE
    size = plan.GridSize.of(space, hyperband)
    drawn, most = most_execution_epochs(50, brackets(300, 3))
    assert (size.points, size.execution_epochs) == (drawn, most) and most < 50 * 300
    assert str(size).startswith("hyperband to 300 epochs (factor 3): ") and f"at most {most:,} execution-epochs" in str(size)


def test_the_dry_run_estimates_a_hyperband_search_by_its_brackets(tmp_path):
    """The estimate extrapolates the epochs its brackets train, not num_epochs for every configuration."""
    from bpfree.tuning import EngineOptions, estimate

    space = SearchSpace.create({"algorithm": ["bp"], "arch": ["8"], "activation": ["tanh"], "batchnorm": [False],
                                "bw_init": ["ortho"], "lr": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], "dropout": [0.0]})
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=27, search="hyperband",
                          max_trials=6, hyperband_factor=3)
    found = estimate.estimate(config, space, space.grid(), EngineOptions())
    drawn, most = most_execution_epochs(6, brackets(27, 3))
    assert found.epochs == most / drawn < 27
    assert f"{most / drawn:.3g} epochs (an execution's mean under Hyperband's brackets" in " ".join(found.lines(config))
