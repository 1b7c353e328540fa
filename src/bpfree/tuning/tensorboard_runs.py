"""One TensorBoard run per execution: its epoch logs as scalars tagged metric first, split second.

An execution's run is ``<project>/tensorboard/<trial id>/execution_<k>`` (the trial id leads with the rule:
``dfa-256-256-relu-bwortho-lr0.003-3f9c2a/execution_0``), holding every per-epoch scalar of its logs as
``<metric>/<split>`` (`tag`: ``loss/train``, ``loss/validation``, ``error_rate/test``, ``bp_cosine_1/train``;
a schedule's ``learning_rate`` as is), its hparams (`tensorboard_hparams.write_run`) and, when asked, its
activation histograms and reconstructions. Metric first: TensorBoard's Scalars page groups charts by the
tag's first component, so a metric's train, validation and test charts sit side by side in one section,
and the HParams dashboard's metric columns read ``error_rate/validation``.

Searches written before this layout kept an execution's scalars in ``train/`` and ``validation/`` sub-runs
(Keras's TensorBoard callback, tags ``epoch_<metric>``): `merge_old_layout` copies their events into the
execution's own run under the new tags and removes the sub-runs.

Written with TensorBoard's own protos and record framing, in Python (no TensorFlow op per scalar), at each
epoch's end, after the record: nothing here runs in the engine's epoch.
"""

import logging
import os
import re
import shutil
import socket
import time

import keras
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer import record_writer

from bpfree import io

SPLITS = (("val_", "validation"), ("test_", "test"))  # a log's prefix → its split; no prefix: "train"
UNSPLIT = ("learning_rate",)  # logs that belong to no split (a schedule's rate of the epoch)
OLD_SUBRUNS = ("train", "validation")  # the sub-runs Keras's TensorBoard callback wrote
MERGED_SUFFIX = ".bpfree-merged"  # the event file `merge_old_layout` writes in an execution's run
SCALARS_SUFFIX = ".bpfree-scalars"  # the event file of an execution's epoch scalars (`EpochScalars`)


def tag(name, split=None):
    """The tag of epoch log `name`: "val_error_rate" → "error_rate/validation", "loss" → "loss/train",
    "test_loss" → "loss/test", "learning_rate" as is. With `split`, `name` is already that split's
    metric name (an old sub-run's ``epoch_loss`` read as "loss" of split "validation")."""
    if split is None:
        for prefix, named in SPLITS:
            if name.startswith(prefix):
                return f"{name[len(prefix):]}/{named}"
        split = "train"
    return name if name in UNSPLIT else f"{name}/{split}"


def event_file_name(run_dir, suffix=""):
    """A new event file's path in `run_dir`, named as TensorBoard's writers name theirs (by time first:
    TensorBoard reads a run's files in name order)."""
    return os.path.join(run_dir, f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                                 f"{os.getpid()}.{time.monotonic_ns()}{suffix}")


class EventFile:
    """An event file being written in `run_dir` (made by `open` or the first write; `open(path)`: the file
    at `path`, appended to): summaries appended as events."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self._writer = None

    def open(self, path=None):
        if self._writer is None:
            os.makedirs(self.run_dir, exist_ok=True)
            if path is None:
                self._writer = record_writer.RecordWriter(open(event_file_name(self.run_dir), "wb"))
                self._writer.write(event_pb2.Event(wall_time=time.time(),
                                                   file_version="brain.Event:2").SerializeToString())
            else:
                self._writer = record_writer.RecordWriter(open(path, "ab"))

    def write(self, summary, step):
        self.open()
        self._writer.write(summary_event(summary, step).SerializeToString())

    def flush(self):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def scalars(logs):
    """A Summary of every numeric value of `logs` ({name: value}), each under its `tag`."""
    summary = summary_pb2.Summary()
    for name, value in (logs or {}).items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        summary.value.extend(scalar_summary.scalar_pb(tag(name), value).value)
    return summary


class EpochScalars(keras.callbacks.Callback):
    """At each epoch's end, the epoch's logs as scalars (`tag`) at step `epoch` in the execution's run
    `run_dir`, flushed so a running TensorBoard shows the epoch; closed when training ends.

    When training begins, the run's scalars of the epochs before it are rewritten from the record
    (`history`, {metric: [value per epoch]}, and `epoch_ends`, their wall times; a resumed execution's
    record is the truth): one event file of them (`SCALARS_SUFFIX`, written atomically), to which the
    epochs trained now are appended; then every other file of the run's epoch scalars is removed. So after
    a kill at any point and a resume at epoch k, the run shows each epoch's scalars exactly once: those the
    kill cut (its record written, its scalars not) are there, and those of epochs the resumed run replays
    (after its checkpoint, older than the record) are not shown twice. A kill between the new file and the
    removals leaves both; the next resume removes them. A fresh execution (k = 0) starts an empty file."""

    def __init__(self, run_dir, history=None, epoch_ends=()):
        super().__init__()
        self.events = EventFile(run_dir)
        self.history = dict(history or {})
        self.epoch_ends = list(epoch_ends)

    def on_train_begin(self, logs=None):
        run_dir = self.events.run_dir
        os.makedirs(run_dir, exist_ok=True)
        path = event_file_name(run_dir, SCALARS_SUFFIX)
        write_events(path, history_events(self.history, self.epoch_ends))
        tags = {tag(name) for name in self.history}
        for name in _event_files(run_dir):
            if name != os.path.basename(path) and _epoch_scalars_file(os.path.join(run_dir, name), tags):
                os.remove(os.path.join(run_dir, name))
        self.events.open(path)

    def on_epoch_end(self, epoch, logs=None):
        summary = scalars(logs)
        if summary.value:
            self.events.write(summary, epoch)
            self.events.flush()

    def on_train_end(self, logs=None):
        self.events.close()


def history_events(history, epoch_ends=()):
    """The events of a record's `history`: epoch e's values (None: absent, skipped) as scalars at step e,
    at wall time `epoch_ends[e]` (now where it has none)."""
    events = []
    for epoch in range(max((len(v) for v in history.values()), default=0)):
        logs = {name: values[epoch] for name, values in history.items()
                if epoch < len(values) and values[epoch] is not None}
        summary = scalars(logs)
        if summary.value:
            event = summary_event(summary, epoch)
            if epoch < len(epoch_ends) and isinstance(epoch_ends[epoch], (int, float)):
                event.wall_time = float(epoch_ends[epoch])
            events.append(event)
    return events


def _epoch_scalars_file(path, tags):
    """Whether the event file at `path` holds only epoch scalars of a run (what `EpochScalars` rewrites): one
    of its files (`SCALARS_SUFFIX`), or one it wrote before they were named so (no suffix: a name ending in
    digits, only scalars tagged `tags`; not the run's hparams, tf.summary's ``.v2`` histograms, or a merged
    file of the old layout)."""
    name = os.path.basename(path)
    if name.endswith(SCALARS_SUFFIX):
        return True
    if not re.fullmatch(r"events\.out\.tfevents\.\d+\..*\.\d+\.\d+", name):
        return False
    try:
        for event in event_file_loader.LegacyEventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars" or value.tag not in tags:
                    return False
    except Exception:  # unreadable: not ours to remove
        return False
    return True


def merge_old_layout(tensorboard_dir):
    """Moves every run of the old layout under `tensorboard_dir` (an execution's ``train/`` and ``validation/``
    sub-runs, kept-aside runs included) into the execution's own run: one event file (`MERGED_SUFFIX`)
    with the sub-runs' events, ``epoch_<metric>`` renamed `tag` (Keras's ``evaluation_<m>_vs_iterations``,
    the validation values again by optimizer step, dropped; other tags, such as activation histograms,
    kept), written atomically; then the sub-runs are removed. Returns the runs merged."""
    merged = []
    for root, dirs, _ in os.walk(tensorboard_dir):
        subruns = [d for d in OLD_SUBRUNS if d in dirs and _event_files(os.path.join(root, d))]
        if not subruns:
            continue
        dirs[:] = [d for d in dirs if d not in OLD_SUBRUNS]
        if not any(name.endswith(MERGED_SUFFIX) for name in os.listdir(root)):  # else merged before a kill
            events = [e for sub in subruns for e in _renamed_events(os.path.join(root, sub), sub)]
            write_events(event_file_name(root, MERGED_SUFFIX), events)
        for sub in subruns:
            shutil.rmtree(os.path.join(root, sub))
        merged.append(root)
    if merged:
        logging.getLogger("bpfree").info("TensorBoard: %d runs of the train/validation layout merged into one run "
                                         "each under %s", len(merged), tensorboard_dir)
    return merged


def _event_files(directory):
    return sorted(f for f in os.listdir(directory) if "tfevents" in f and not f.startswith(io.TEMP_PREFIX))


def _renamed_events(subrun, split):
    """The events of an old sub-run's files with summaries, their tags renamed (see `merge_old_layout`)."""
    out = []
    for name in _event_files(subrun):
        for event in event_file_loader.LegacyEventFileLoader(os.path.join(subrun, name)).Load():
            if not event.HasField("summary"):
                continue
            kept = []
            for value in event.summary.value:
                if value.tag.startswith("evaluation_") and value.tag.endswith("_vs_iterations"):
                    continue
                if value.tag.startswith("epoch_"):
                    value.tag = tag(value.tag[len("epoch_"):], split)
                kept.append(value)
            if kept:
                del event.summary.value[:]
                event.summary.value.extend(kept)
                out.append(event)
    return out


def write_events(path, events):
    """Writes an event file of `events` (Event protos) at `path`, atomically (`bpfree.io.write_atomic`:
    its temporary file's name has no "tfevents", so TensorBoard never reads it half written)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            writer = record_writer.RecordWriter(f)
            writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
            for event in events:
                writer.write(event.SerializeToString())

    io.write_atomic(path, write)


def summary_event(summary, step=0):
    """`summary` as an Event at `step`, now."""
    return event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
