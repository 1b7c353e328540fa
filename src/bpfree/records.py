"""Per-execution training records: the write side of `bpfree.results`.

Every execution (one training run of one trial, with one seed) owns one JSON file,

    <experiment dir>/records/<trial_id>/execution_<k>.json

rewritten atomically (temporary name, then `os.replace`) after every epoch, so a crash or a
`kill -9` loses at most the epoch in flight and never leaves a half-written file. The file holds

    {"format": 1, "trial_id": str, "execution": int, "hparams": {name: value}, "seed": int | None,
     "status": "running" | "completed" | "failed" | "diverged", "wall_time": seconds,
     "history": {metric: [value per epoch]}, "started": iso time, "updated": iso time,
     "error": str | None}

JSON, never pickle: records are read by other tools, other Python versions and people.
"""

import datetime
import json
import math
import os
import tempfile

FORMAT_VERSION = 1
STATUSES = ("running", "completed", "failed", "diverged")
RECORDS_DIRNAME = "records"


def write_json_atomic(path, payload):
    """Writes `payload` as JSON to `path` atomically: readers see the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def execution_path(experiment_dir, trial_id, execution):
    return os.path.join(experiment_dir, RECORDS_DIRNAME, str(trial_id), f"execution_{int(execution)}.json")


class ExecutionRecord:
    """The record of one execution, appended to as epochs finish and saved after each change."""

    def __init__(self, experiment_dir, trial_id, execution, hparams, seed=None):
        self.path = execution_path(experiment_dir, trial_id, execution)
        now = _now()
        self.data = {
            "format": FORMAT_VERSION,
            "trial_id": str(trial_id),
            "execution": int(execution),
            "hparams": dict(hparams),
            "seed": seed,
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
        return max((len(v) for v in self.data["history"].values()), default=0)

    def start(self, wall_clock):
        """Marks the record running; `wall_clock` is `time.monotonic()` at the start."""
        self._t0 = wall_clock - self.data.get("wall_time", 0.0)
        self.data["status"] = "running"
        self.save()

    def append_epoch(self, logs, wall_clock=None):
        """Appends one epoch's metrics (a Keras `logs` dict) and saves."""
        history = self.data["history"]
        n = self.epochs_done
        for key, value in logs.items():
            column = history.setdefault(key, [None] * n)
            column.extend([None] * (n - len(column)))
            column.append(_to_float(value))
        for column in history.values():
            column.extend([None] * (n + 1 - len(column)))
        self._tick(wall_clock)
        self.save()

    def finish(self, status, error=None, wall_clock=None):
        if status not in STATUSES:
            raise ValueError(f"Unknown status {status!r}; valid: {', '.join(STATUSES)}.")
        self.data["status"] = status
        self.data["error"] = error
        self._tick(wall_clock)
        self.save()

    def save(self):
        self.data["updated"] = _now()
        write_json_atomic(self.path, self.data)

    def _tick(self, wall_clock):
        if wall_clock is not None and self._t0 is not None:
            self.data["wall_time"] = wall_clock - self._t0


class RecordError(ValueError):
    """A record file that cannot be read; its path is in the message."""


def read(path):
    """Reads one record file; a `RecordError` naming the file if it is corrupt."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"Corrupted record file {path}: {e}") from None
    missing = {"trial_id", "execution", "hparams", "status", "history"} - set(data)
    if missing:
        raise RecordError(f"Corrupted record file {path}: missing {', '.join(sorted(missing))}.")
    return data


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


def _jsonable(value):
    # numpy scalars and arrays, tuples of hparams.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_finite(value):
    return value is not None and math.isfinite(value)
