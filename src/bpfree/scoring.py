"""An execution's score: which epochs of its objective count. Shared by the search and `bpfree.results`.

    execution_score({"val_loss": [0.9, 0.5, 0.6]}, "val_loss", "final")   # (0.6, 2): the last epoch
    execution_score({"val_loss": [0.9, 0.5, 0.6]}, "val_loss", "best")    # (0.5, 1): the best epoch
    execution_score({"val_loss": [0.9, 0.5, 0.6]}, "val_loss", "last2")   # (0.55, None): the last 2, averaged

Every objective is minimised (losses, error rates). "final" is what a trained network gives; "best" is
what keras-tuner scores (an early-stopped network; optimistic over many epochs); "last<k>" smooths a
noisy final epoch. A search records its choice as ``search["score"]``; searches recorded before the
setting existed were scored by "best" (`recorded_score`). Imports no TensorFlow.
"""

import math
import re

SCORES = ("final", "best", "last<k>")
DEFAULT = "final"
BEFORE_THE_SETTING = "best"  # what searches recorded without a "score" setting were scored by
FOR_EXPERIMENTS = "final"  # experiment records (no search settings): their last value is their result
_LAST = re.compile(r"last([1-9][0-9]*)")


def check_score(score):
    """`score` if it is "final", "best" or "last<k>" (k ≥ 1); a ValueError naming it otherwise."""
    if isinstance(score, str) and (score in ("final", "best") or _LAST.fullmatch(score)):
        return score
    raise ValueError(f"Invalid score {score!r}: final (the last epoch), best (the best epoch) or last<k> "
                     "(the mean of the last k epochs, e.g. last3).")


def recorded_score(search):
    """The score an execution was ranked by, from its record's ``search`` settings (None: an experiment)."""
    if search is None:
        return FOR_EXPERIMENTS
    return check_score(search.get("score", BEFORE_THE_SETTING))


def execution_score(history, objective, score=DEFAULT):
    """(value, epoch) of one execution: `history` maps metric names to per-epoch values (None or NaN where
    not finite, as records hold them). epoch is the 0-based index the value comes from (the epoch column
    of `bpfree.results.load`), None for "last<k>" (a mean) and when there is no finite value.

    "final": the last epoch's value; "best": the lowest finite value (its first epoch); "last<k>": the
    mean of the last k epochs (of all, when fewer). A non-finite value where one is needed (a diverged
    last epoch) gives (nan, None): the execution has no score, never a finite one from earlier epochs."""
    check_score(score)
    values = [_finite_or_nan(v) for v in history.get(objective) or ()]
    if not values:
        return math.nan, None
    if score == "final":
        value = values[-1]
        return (value, len(values) - 1) if math.isfinite(value) else (math.nan, None)
    if score == "best":
        finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
        return min(finite) if finite else (math.nan, None)
    window = values[-int(_LAST.fullmatch(score).group(1)):]
    if not all(math.isfinite(v) for v in window):
        return math.nan, None
    return math.fsum(window) / len(window), None


def epochs_used(score, epoch, epochs):
    """The 1-based epochs a score came from, as (first, last): (epoch + 1,) twice for "final" and "best",
    the window for "last<k>" over an execution of `epochs` epochs; None when the score has no epoch."""
    match = _LAST.fullmatch(score)
    if match:
        return (max(1, epochs - int(match.group(1)) + 1), epochs) if epochs else None
    return None if epoch is None else (epoch + 1, epoch + 1)


def _finite_or_nan(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan
