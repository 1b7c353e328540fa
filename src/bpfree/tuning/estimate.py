"""How long a grid search will take: a short timing run of the same search, extrapolated (`--dry_run`).

The timing run is `run_search` itself, in a temporary directory, on a small grid: every (algorithm, arch)
pair of the search (with more than `MAX_TIMED_PAIRS` pairs: every algorithm at the first arch, and the
first algorithm at every arch), each at the first value of its other hparams, with as many executions as
the search trains as the members of one program, for `TIMED_EPOCHS` epochs on at most `TIMING_EXAMPLES`
training examples. A pair's records (wall time, and when each epoch ended: ``epoch_ends``)
give its set-up — building, tracing, the final test: the wall time less its epochs — and the time of
one epoch of its group. The search's time is then

    overhead + Σ over structures: set-up + groups × epochs × epoch time × (training examples / timed ones)

with the set-up paid once per structure (the search traces one program per structure and reuses it for
all its groups), or once per group where executions train one at a time (``--engine fit``, models
with their own train step: their timed epochs do not overlap). Other hparams are taken to cost what their
first values do; an untimed pair costs t(a, r) = t(a, r0) · t(a0, r) / t(a0, r0).
"""

import collections
import contextlib
import dataclasses
import math
import os
import tempfile
import textwrap
import time

from bpfree import records
from bpfree.choices import DEFAULT_HYPERBAND_FACTOR
from bpfree.tuning import plan
from bpfree.tuning.options import AUTO_MEMBERS, AUTO_MEMBERS_WITHOUT_XLA, structure_key
from bpfree.tuning.space import SearchSpace

TIMED_EPOCHS = 2  # the first epoch includes tracing; the second is an epoch as every later one
TIMING_EXAMPLES = 4096  # training examples a timed epoch sees at most (larger sets are subsampled, then scaled)
MAX_TIMED_PAIRS = 12  # (algorithm, arch) pairs timed one by one; beyond it, the first arch's and algorithm's
DISTRIBUTED_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@dataclasses.dataclass(frozen=True)
class PairTiming:
    """One (algorithm, arch) pair's timed group: seconds of set-up, seconds of one epoch of the group,
    and whether its executions trained one at a time."""

    setup: float
    epoch: float
    alone: bool = False


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The estimated seconds of a search and how they were found."""

    seconds: float
    pairs: int  # (algorithm, arch) pairs in the grid
    timed: int  # of them timed
    slots: int  # executions timed side by side per pair
    examples: tuple  # (training examples of the search, of a timed epoch)
    timing_seconds: float
    alone: bool = False  # every timed pair trained its executions one at a time
    unfinished: tuple = ()  # (trial id, execution, status, error) of timed executions that did not finish
    epochs: float = None  # epochs an execution trains, on average (Hyperband's brackets); None: the search's num_epochs

    def _executions(self):
        if self.slots == 1:
            return "one execution of each pair's first point"
        if self.alone:
            return f"{self.slots} executions of each pair's first point, one at a time as the search trains them"
        return f"{self.slots} executions of each pair's first point as the members of one program, as the search trains them"

    def _extrapolated(self, epochs):
        epochs = (_count(epochs, "epoch") if self.epochs is None  # Hyperband's: the most its brackets train, on average
                  else f"{self.epochs:.3g} epochs (an execution's mean under Hyperband's brackets, at most)")
        if self.alone:
            return f"each execution's set-up (building, tracing, testing) plus its {epochs}"
        return (f"each structure's set-up (building, tracing, testing: once, as all its groups reuse its program) "
                f"plus its groups × {epochs}")

    def lines(self, config, width=100):
        """The dry run's lines: the estimate, then how it was made."""
        full, timed = self.examples
        pairs = _count(self.pairs, "(algorithm, arch) pair")
        how = (f"how: the search itself ran {self.timed} of the grid's {pairs} for {TIMED_EPOCHS} epochs in a "
               f"temporary directory ({format_seconds(self.timing_seconds)}, nothing kept): {self._executions()}; "
               f"the grid's time is {self._extrapolated(config.num_epochs)} at the timed pace; other hparam values "
               "are taken to cost what the timed ones do")
        if self.timed < self.pairs:
            how += "; an untimed pair costs t(algorithm, arch0) · t(algorithm0, arch) / t(algorithm0, arch0)"
        if timed < full:
            how += (f"; epochs were timed on about {timed:,} of the {full:,} training examples and scaled by "
                    f"{full / timed:.3g}")
        if config.use_early_stopping:
            how += "; early stopping may end executions sooner"
        lines = [*textwrap.wrap(f"estimated wall time: {format_seconds(self.seconds)} on this machine as loaded now "
                                "(an estimate, not a bound)", width, subsequent_indent="    "),
                 *textwrap.wrap(how + ".", width, subsequent_indent="    ", break_on_hyphens=False)]
        if self.unfinished:
            tid, execution, status, error = self.unfinished[0]
            first = f"{tid} execution {execution}: {status}" + (f", {error.splitlines()[0][:200]}" if error else "")
            lines += textwrap.wrap(f"warning: {_count(len(self.unfinished), 'timed execution')} did not finish (first: "
                                   f"{first}); the search may meet the same", width, subsequent_indent="    ")
        return lines


def estimate(config, space, points, engine):
    """The `Estimate` of the search (`config`, `space`) running `points` with `engine` (`EngineOptions`; module docstring)."""
    from bpfree.tuning.search import run_search

    pairs = list(dict.fromkeys((p["algorithm"], p["arch"]) for p in points))
    algorithms = list(dict.fromkeys(a for a, _ in pairs))
    archs = list(dict.fromkeys(r for _, r in pairs))
    runs = [(algorithms, archs)]
    if len(algorithms) * len(archs) > MAX_TIMED_PAIRS:
        runs = [(algorithms, archs[:1]), (algorithms[:1], archs[1:])]
    mean_epochs = None
    if config.search == "hyperband":  # the configurations its brackets draw, and the epochs they train at most
        size = plan.HyperbandSize.of(len(points), config)
        points = points[:size.points]
        mean_epochs = size.execution_epochs / (size.points * config.executions_per_trial)
    slots = timed_slots(points, config, engine)
    timing, examples = timing_config(config, slots)
    timings, overhead, unfinished = {}, 0.0, []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bpfree-dry-run-") as tmp, _one_process():
        for k, (some_algorithms, some_archs) in enumerate(runs):
            sub = timing_space(space, some_algorithms, some_archs)
            start = time.perf_counter()
            summary = run_search(os.path.join(tmp, str(k)), timing, sub, log=lambda *a: None, engine=engine)
            found = pair_timings(summary["project_dir"])
            if k == 0:  # validation, data, oracle: once per search
                overhead = max(0.0, time.perf_counter() - start - sum(span for _, span in found.values()))
            timings.update({pair: t for pair, (t, _) in found.items()})
            unfinished += summary.get("unfinished") or []
    timing_seconds = time.perf_counter() - started
    timed = sum(pair in timings for pair in pairs)
    alone = engine.fit or all(t.alone for t in timings.values())
    timings = complete(timings, pairs, algorithms[0], archs[0])
    seconds = overhead + extrapolate(points, config, engine, timings, slots, examples[0] / examples[1], mean_epochs)
    return Estimate(seconds, len(pairs), timed, slots, examples, timing_seconds, alone, tuple(unfinished),
                    mean_epochs)


def timed_slots(points, config, engine):
    """Executions a timed pair trains together: as many as the search's programs have members (its
    `members`, automatic: at most `AUTO_MEMBERS` under XLA, fewer where no structure has that many
    executions, `AUTO_MEMBERS_WITHOUT_XLA` without it); 1 through `fit`."""
    if engine.fit:
        return 1
    capacity = engine.members or (AUTO_MEMBERS["cpu"] if config.jit_compile else AUTO_MEMBERS_WITHOUT_XLA)
    per_structure = collections.Counter(structure_key(p) for p in points)
    return min(capacity, max(per_structure.values()) * config.executions_per_trial)


def timing_config(config, slots):
    """(the timing run's SearchConfig, (training examples of the search, of the timing run)): the same
    settings, `slots` executions a point, `TIMED_EPOCHS` epochs, no early stopping, and a training set
    (and validation carve-out) cut to about `TIMING_EXAMPLES`."""
    changes = dict(num_epochs=TIMED_EPOCHS, executions_per_trial=slots, use_early_stopping=False,
                   search="grid", max_trials=None,  # every timed pair runs, whatever the search
                   hyperband_factor=DEFAULT_HYPERBAND_FACTOR)
    total = (config.dataset_info().splits or {}).get("train") or 0
    full = round(total * (1 - config.validation_frac) * (config.examples_frac or 1.0))
    if full <= TIMING_EXAMPLES:
        return dataclasses.replace(config, **changes), (max(full, 1), max(full, 1))
    ratio = TIMING_EXAMPLES / full
    validation_frac = config.validation_frac * ratio  # the carve-out cut alike; examples_frac is of what it leaves
    kept = (1 - config.validation_frac) * (config.examples_frac or 1.0) / (1 - validation_frac)
    changes.update(validation_frac=validation_frac, examples_frac=ratio * kept)
    return dataclasses.replace(config, **changes), (full, TIMING_EXAMPLES)


def timing_space(space, algorithms, archs):
    """The grid of `algorithms` × `archs`, every other hparam (rule hparams too) at its first value in `space`."""
    values = {name: list(vals[:1]) for name, vals in space.values + space.extras}
    values.update(algorithm=list(algorithms), arch=list(archs))
    return SearchSpace.create(values, tune_dropout=True)


def pair_timings(project_dir):
    """{(algorithm, arch): (PairTiming, seconds from the first execution's start to the last's end)} of a
    timing run, from its records' wall times and epoch end times."""
    spans, spells = {}, collections.defaultdict(list)
    for path in records.iter_record_paths(project_dir):
        data = records.read(path)
        pair = (data["hparams"]["algorithm"], data["hparams"]["arch"])
        spans[pair] = max(spans.get(pair, 0.0), float(data["wall_time"]))
        ends = dict(enumerate(data.get("epoch_ends") or []))
        if 0 in ends and 1 in ends:
            spells[pair].append((ends[0], ends[1]))
    timings = {}
    for pair, span in spans.items():
        if spells[pair]:
            epoch = union_length(spells[pair])
            alone = epoch > 1.5 * max(end - start for start, end in spells[pair])  # the epochs did not overlap
            timings[pair] = (PairTiming(max(0.0, span - TIMED_EPOCHS * epoch), epoch, alone), span)
        else:  # no second epoch (diverged at once): all of it counted as epochs
            timings[pair] = (PairTiming(0.0, span / TIMED_EPOCHS), span)
    return timings


def union_length(intervals):
    """The length of the union of (start, end) intervals."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def complete(timings, pairs, first_algorithm, first_arch):
    """`timings` with every pair of `pairs`: an untimed one t(a, r) = t(a, r0) · t(a0, r) / t(a0, r0), and any
    still missing (its timing run left no record) the mean of the timed ones."""
    out = dict(timings)
    base = timings.get((first_algorithm, first_arch))
    for algorithm, arch in pairs:
        row, column = timings.get((algorithm, first_arch)), timings.get((first_algorithm, arch))
        if (algorithm, arch) in out or not (base and row and column):
            continue
        out[(algorithm, arch)] = PairTiming(_ratio(row.setup, column.setup, base.setup),
                                            _ratio(row.epoch, column.epoch, base.epoch), row.alone)
    if timings:
        mean = PairTiming(sum(t.setup for t in timings.values()) / len(timings),
                          sum(t.epoch for t in timings.values()) / len(timings))
        out.update({pair: mean for pair in pairs if pair not in out})
    return out


def extrapolate(points, config, engine, timings, slots, scale=1.0, epochs=None):
    """Seconds the search's `points` take from each pair's `PairTiming` of a group of `slots` executions;
    `scale`: training examples of the search per timed one; `epochs`: an execution's (default: the search's
    num_epochs)."""
    structures = {}  # structure → [pair, points]
    for p in points:
        structures.setdefault(structure_key(p), [(p["algorithm"], p["arch"]), 0])[1] += 1
    total = 0.0
    for pair, count in structures.values():
        t = timings[pair]
        executions = count * config.executions_per_trial
        epoch_seconds = (config.num_epochs if epochs is None else epochs) * t.epoch * scale
        if engine.fit or t.alone:  # each group of `slots` sets up its own models
            total += executions / slots * (t.setup + epoch_seconds)
        else:  # one program per structure, reused by all its groups
            total += t.setup + math.ceil(executions / slots) * epoch_seconds
    return total


def format_seconds(seconds):
    """"40 s", "3.5 min", "2.1 h", "12 days": the unit a person reads at a glance."""
    for unit, size, limit in (("s", 1, 90), ("min", 60, 90 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} s" if unit == "s" else f"{seconds / size:.2g} {unit}"
    days = seconds / 86400
    return f"{days:,.0f} days" if days >= 10 else f"{days:.2g} days"


@contextlib.contextmanager
def _one_process():
    """Within it, keras-tuner's distributed variables are unset: the timing run is one local process
    even where this one is a coordinator or a worker."""
    saved = {name: os.environ.pop(name) for name in DISTRIBUTED_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _ratio(row, column, base):
    return row * column / base if base > 0 else max(row, column)


def _count(n, noun):
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
