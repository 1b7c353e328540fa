"""What a search will do, said before it starts: the grid's size, its points and settings (`--dry_run`),
and the size above which it runs only when asked to (`--yes`).

The size of a search is counted in execution-epochs (grid points × executions per point × epochs), the
work it trains whatever the network: a grid of more than `ASK_ABOVE` of them is refused without `--yes`
(one line, exit 2, nothing trained), as hparams/default.toml's full grid (27,648 points × 100 epochs) is.
"""

import dataclasses
import textwrap

from bpfree.tuning.hyperband_schedule import brackets, most_execution_epochs
from bpfree.tuning.space import trial_id

# Execution-epochs a search runs without --yes: more take hours on a CPU even for the smallest nets here.
# Every shipped preset stays below it; the full default grid is far above it.
ASK_ABOVE = 10_000
SHOWN_TRIALS = 4  # trial ids a dry run lists before "… and N more"


@dataclasses.dataclass(frozen=True)
class GridSize:
    """points × executions (per point) × epochs (per execution)."""

    points: int
    executions: int
    epochs: int

    @classmethod
    def of(cls, space, config):
        """The search's size; a Hyperband search's is the most its brackets can train (`HyperbandSize`)."""
        points = space.size() if config.max_trials is None else min(space.size(), config.max_trials)  # random, bayesian
        if config.search == "hyperband":
            return HyperbandSize.of(points, config)
        return cls(points, config.executions_per_trial, config.num_epochs)

    @property
    def execution_epochs(self):
        return self.points * self.executions * self.epochs

    def __str__(self):
        return (f"{_count(self.points, 'point')} × {_count(self.executions, 'execution')} × "
                f"{_count(self.epochs, 'epoch')} = {_count(self.execution_epochs, 'execution-epoch')}")


@dataclasses.dataclass(frozen=True)
class HyperbandSize:
    """A Hyperband search's size: the most execution-epochs its brackets can train
    (`hyperband_schedule.most_execution_epochs`), far fewer than its points × executions × num_epochs."""

    points: int
    executions: int
    epochs: int
    factor: int
    execution_epochs: int

    @classmethod
    def of(cls, points, config):
        drawn, most = most_execution_epochs(points, brackets(config.num_epochs, config.hyperband_factor),
                                            config.executions_per_trial)
        return cls(drawn, config.executions_per_trial, config.num_epochs, config.hyperband_factor, most)

    def __str__(self):
        return (f"hyperband to {_count(self.epochs, 'epoch')} (factor {self.factor}): {_count(self.points, 'point')} × "
                f"{_count(self.executions, 'execution')}, at most {_count(self.execution_epochs, 'execution-epoch')}")


def check_size(size, yes):
    """Refuses (ValueError, one line) a grid of more than `ASK_ABOVE` execution-epochs unless `yes`."""
    if size.execution_epochs > ASK_ABOVE and not yes:
        raise ValueError(f"The grid is {size}, above the {ASK_ABOVE:,} a search runs without asking; pass --yes to "
                         "run it, --dry_run to see its points and an estimated time, or fix some hparams (--lr, "
                         "--arch, ...) to search fewer.")


def describe(space, config, engine, finished=None, points=None, width=100):
    """The lines of a dry run's plan: size, searched and fixed hparams, the first trial ids, the settings.
    `finished`: how many grid points the experiment directory already holds finished (None: no records);
    `points`: the grid, if already built."""
    points = space.grid() if points is None else points
    values = list(space.values) + [(name, vals) for name, vals in space.extras
                                   if name.split(".", 1)[0] in space.as_dict()["algorithm"]]
    searched = [f"{name} ({len(vals)}): {', '.join(map(value_text, vals))}" for name, vals in values if len(vals) > 1]
    fixed = [f"{name} {value_text(vals[0])}" for name, vals in values if len(vals) == 1]
    ids = [trial_id(p) for p in points[:SHOWN_TRIALS]]
    more = f" … and {len(points) - len(ids):,} more" if len(points) > len(ids) else ""
    settings = [f"{name}\xa0{value_text(value)}" for name, value in config.to_json().items()]  # kept on one line
    grouping = engine.describe(config.jit_compile)
    lines = [f"grid: {GridSize.of(space, config)}"]
    if finished is not None:
        lines.append(f"already finished: {finished:,} of {len(points):,} points (re-running resumes; they are skipped)")
    lines += _wrapped("searched", searched or ["nothing (one point)"], "; ", width)
    lines += _wrapped("fixed", fixed, ", ", width)
    lines += _wrapped("first trials", [", ".join(ids) + more], "", width)
    kept = ["each execution's final model kept as .keras (--save_models)"] if engine.save_models else []
    lines += _wrapped("settings", settings + [grouping] + kept, ", ", width)
    return lines


def value_text(value):
    """A hparam or setting value as flags and presets spell it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(value_text, value)) + "]"
    return str(value)


def _count(n, noun):
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _wrapped(label, items, separator, width):
    """`label: items…` wrapped to `width`, never inside a no-break space (shown as a space)."""
    lines = textwrap.wrap(f"{label}: {separator.join(items)}", width, subsequent_indent="    ", break_on_hyphens=False)
    return [line.replace("\xa0", " ") for line in lines]
