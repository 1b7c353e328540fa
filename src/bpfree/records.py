"""Per-execution training records: the write side of `bpfree.results`.

Every execution (one training run of one trial, with one seed) owns one JSON file,

    <experiment dir>/records/<trial_id>/execution_<k>.json

rewritten atomically (temporary name, then `os.replace`) after every epoch, so a crash or a
`kill -9` loses at most the epoch in flight and never leaves a half-written file. The file holds

    {"format": 1, "trial_id": str, "execution": int, "hparams": {name: value}, "seed": int | None,
     "search": {setting: value} (the search settings that shaped it: epochs, batch size, data, ...),
     "data_source": str (what served the data: `bpfree.datasets.source`; not a setting, never compared),
     "status": "running" | "completed" | "failed" | "diverged" | "error", "wall_time": seconds,
     "history": {metric: [value per epoch, null where not finite]}, "started": iso time,
     "updated": iso time, "error": str | None}

and, from a Hyperband search (`bpfree.tuning.hyperband`), "hyperband": {"bracket": int, "budgets": [epochs
of each round it ran, in order]} (the last: the epochs it was asked to train, `asked_epochs`), and
"stopped_by": "hyperband" once its round's promotion left it out (it trains no further). From a search run
with ``--save_models``, "model_path": the final model's file (`.keras`), relative
to the record's directory (``execution_<k>.keras``; `bpfree.results.best_models` loads it).

Strict JSON (no bare NaN), never pickle: records are read by other tools, other Python versions and
people. Beside a running execution's record lies its checkpoint (`bpfree.checkpoints`).
"""

import datetime
import json
import math
import os
import re

from bpfree import checks, io

FORMAT_VERSION = 1
# completed, diverged and failed are final: properties of the grid point (failed: no model can be built
# for it). "error" is an accident (I/O, memory, a crash inside fit): the execution runs again next time,
# as does one left "running" by a killed search.
STATUSES = ("running", "completed", "failed", "diverged", "error")
FINISHED = ("completed", "failed", "diverged")
RECORDS_DIRNAME = "records"
# A search's confirmation executions (`bpfree.tuning.confirmation`) live in the project directory's twin
# "<project>-confirmation", their records marked ``"confirmation": true``; the read side counts them to the project.
CONFIRMATION_SUFFIX = "-confirmation"


def execution_path(experiment_dir, trial_id, execution):
    return os.path.join(experiment_dir, RECORDS_DIRNAME, str(trial_id), f"execution_{int(execution)}.json")


class ExecutionRecord:
    """The record of one execution, appended to as epochs finish and saved after each change."""

    def __init__(self, experiment_dir, trial_id, execution, hparams, seed=None, search=None):
        self.path = execution_path(experiment_dir, trial_id, execution)
        now = _now()
        self.data = {
            "format": FORMAT_VERSION,
            "trial_id": str(trial_id),
            "execution": int(execution),
            "hparams": dict(hparams),
            "seed": seed,
            "search": dict(search) if search is not None else None,
            "status": "running",
            "wall_time": 0.0,
            "history": {},
            "started": now,
            "updated": now,
            "error": None,
        }
        self._t0 = None

    @classmethod
    def resume(cls, path):
        """Re-opens an existing record (to continue an interrupted execution)."""
        data = read(path)
        record = cls.__new__(cls)
        record.path = path
        record.data = data
        record._t0 = None
        return record

    @property
    def status(self):
        return self.data["status"]

    @property
    def epochs_done(self):
        return epochs_done(self.data["history"])

    def restore_history(self, history):
        """Replaces the history by `history` (a checkpoint's: the epochs the resumed run continues from)."""
        self.data["history"] = {k: list(v) for k, v in history.items()}

    def start(self, wall_clock):
        """Marks the record running; `wall_clock` is `time.monotonic()` at the start."""
        self._t0 = wall_clock - self.data.get("wall_time", 0.0)
        self.data["status"] = "running"
        self.save()

    def append_epoch(self, logs, wall_clock=None):
        """Appends one epoch's metrics (a Keras `logs` dict) and saves."""
        self.save_history(with_epoch(self.data["history"], logs), wall_clock)

    def save_history(self, history, wall_clock=None):
        """Replaces the history by `history` (e.g. `with_epoch(...)` of it) and saves."""
        self.data["history"] = history
        self._tick(wall_clock)
        self.save()

    def finish(self, status, error=None, wall_clock=None):
        checks.choice("status", status, STATUSES)
        self.data["status"] = status
        self.data["error"] = error
        self._tick(wall_clock)
        self.save()

    def save(self):
        self.data["updated"] = _now()
        io.write_json(self.path, self.data)

    def _tick(self, wall_clock):
        if wall_clock is not None and self._t0 is not None:
            self.data["wall_time"] = wall_clock - self._t0


class RecordError(ValueError):
    """A record file that cannot be read; its path is in the message."""


def read_or_none(path):
    """The record at `path`, or None where there is none or it is not a valid record (`read`)."""
    try:
        return read(path)
    except RecordError:
        return None


def read(path):
    """Reads one record file; a `RecordError` naming the file if it is not a valid record (unreadable,
    truncated, not JSON, not an object, or a field of the wrong type)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise RecordError(f"Corrupted record file {path}: {e}") from None
    if not isinstance(data, dict):
        raise RecordError(f"Corrupted record file {path}: not a record (a JSON {type(data).__name__}).")
    missing = {"trial_id", "execution", "hparams", "status", "history"} - set(data)
    if missing:
        raise RecordError(f"Corrupted record file {path}: missing {', '.join(sorted(missing))}.")
    problems = []
    if not isinstance(data["trial_id"], str):
        problems.append("trial_id")
    if not isinstance(data["execution"], int) or isinstance(data["execution"], bool) or data["execution"] < 0:
        problems.append("execution")
    if not isinstance(data["hparams"], dict):
        problems.append("hparams")
    if data["status"] not in STATUSES:
        problems.append("status")
    history = data["history"]
    if not isinstance(history, dict) or not all(
            isinstance(v, list) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
                                        for x in v) for v in history.values()):
        problems.append("history")
    if data.get("search") is not None and not isinstance(data["search"], dict):
        problems.append("search")
    if problems:
        raise RecordError(f"Corrupted record file {path}: invalid {', '.join(problems)}.")
    elsewhere = misplaced(path, data)
    if elsewhere:
        raise RecordError(f"Corrupted record file {path}: {elsewhere}.")
    return data


def misplaced(path, data):
    """How record `data` contradicts where it lies (`<trial_id>/execution_<k>.json` under records/: a
    record copied over another execution's file), or None (also for a path outside that layout)."""
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.basename(os.path.dirname(directory)) != RECORDS_DIRNAME or not re.fullmatch(r"execution_\d+\.json",
                                                                                             name):
        return None
    wrong = []
    if data["trial_id"] != os.path.basename(directory):
        wrong.append(f"trial {data['trial_id']!r}")
    if data["execution"] != int(name[len("execution_"):-len(".json")]):
        wrong.append(f"execution {data['execution']}")
    return f"it is the record of {' '.join(wrong)}, not of its file's" if wrong else None


def inconsistency(data):
    """How record `data` contradicts itself, or None: a `completed` record with fewer epochs than its
    search asked for, where nothing could have stopped it early (early stopping off, or fewer epochs than
    its patience allows), or with none at all."""
    if data["status"] != "completed":
        return None
    ran = epochs_done(data["history"])
    search = data.get("search") if isinstance(data.get("search"), dict) else {}
    early, patience = (search.get(k) for k in ("use_early_stopping", "early_stopping_patience"))
    asked = asked_epochs(data)
    if ran == 0 and asked:
        return "completed with no epoch"
    if not isinstance(asked, int) or ran >= asked:
        return None
    if early is False or (early is True and isinstance(patience, int) and ran <= patience):
        return f"completed after {ran} of its {asked} epochs, which early stopping could not have ended"
    return None


def set_aside(path, reason):
    """Renames a record (or any file of an execution) to `<reason>_<time>_<name>` beside it, so that it
    is kept but never read as a record again; returns the new path."""
    directory, name = os.path.split(path)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    target = os.path.join(directory, f"{reason}_{stamp}_{name}")
    os.replace(path, target)
    return target


def with_epoch(history, logs):
    """A copy of `history` with one more epoch: the values of `logs` (None where absent or not a number)."""
    history = {k: list(v) for k, v in history.items()}
    n = epochs_done(history)
    for key, value in (logs or {}).items():
        column = history.setdefault(key, [None] * n)
        column.extend([None] * (n - len(column)))
        column.append(_to_float(value))
    for column in history.values():
        column.extend([None] * (n + 1 - len(column)))
    return history


def done(data, num_epochs=None):
    """Whether the execution of record `data` needs no more training in a search of `num_epochs` epochs (or
    a Hyperband trial of that budget): a final status, and, when it completed, all `num_epochs` epochs run,
    or fewer than it was asked for (`asked_epochs`: early stopping ended it; more epochs would not change that). A completed execution that ran every
    epoch of a shorter search is not done: the search was extended. Nor is a record that contradicts
    itself (`inconsistency`)."""
    if data["status"] not in FINISHED or inconsistency(data):
        return False  # an inconsistent record: repaired from the execution's final state, or run again
    if num_epochs is None or data["status"] != "completed":
        return True
    ran = epochs_done(data["history"])
    asked = asked_epochs(data)
    return ran >= num_epochs or (isinstance(asked, int) and ran < asked)


def asked_epochs(data):
    """The epochs the execution of record `data` was asked to train: its Hyperband budget (the last of its
    "hyperband" "budgets") where it has one, else its search's num_epochs (None where neither is recorded)."""
    budgets = (data.get("hyperband") or {}).get("budgets") if isinstance(data.get("hyperband"), dict) else None
    if isinstance(budgets, list) and budgets and isinstance(budgets[-1], int):
        return budgets[-1]
    return (data.get("search") or {}).get("num_epochs")


def epochs_done(history):
    return max((len(v) for v in history.values()), default=0)


def iter_record_paths(experiment_dir):
    """Every execution record under `experiment_dir` (searched recursively), sorted."""
    paths = []
    for root, _, files in os.walk(experiment_dir):
        if os.path.basename(os.path.dirname(root)) != RECORDS_DIRNAME:
            continue
        paths.extend(os.path.join(root, f) for f in files if f.startswith("execution_") and f.endswith(".json"))
    return sorted(paths)


def _to_float(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_finite(value):
    return value is not None and math.isfinite(value)
