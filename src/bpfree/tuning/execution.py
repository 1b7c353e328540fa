"""`Execution`: one grid point × one seed, its whole life in one place.

`Execution.open` finds what the execution's files say — finished (its score, nothing to train),
interrupted (its checkpoint restored, the record re-opened: it resumes at the epoch), finished in a
shorter search (extended from its final state), or new (a fresh record; an earlier attempt's files
set aside) — and builds its model. Training then calls `callbacks` (whichever engine trains it: the
member program's epoch loop or Keras `fit`), and `conclude` (completed or diverged) or `fail` (no
model for the point, or an accident the next run retries) ends it.

At every epoch's end the record gets the epoch's logs and the time it ended (``epoch_ends``, Unix
seconds), written atomically. The checkpoint (model, optimizer, rule state, history) is written at
most every ``checkpoint_seconds`` of training and at the last epoch: a killed run resumes from the last
checkpoint and replays the epochs after it bit for bit (each epoch's data order and dropout masks
follow from the seed and the epoch), its record's later epochs replaced by the replay's. One whose
restored history has already met early stopping (`bpfree.tuning.early_stopping.stopped`: killed after the
checkpoint of the epoch that stopped it, or stopped at the last epoch of a shorter search now grown) trains
no more (`end_epoch` = its first epoch): its record ends as the uninterrupted run's.

A completed execution's end is written in this order: its last checkpoint kept as its final state, then its
record completed. A kill between them leaves a running record beside its final state: the next run resumes
it at its last epoch and concludes it. (Searches wrote them the other way round before; a completed record
beside a checkpoint of its last epoch, left by a kill then, gets that final state when a longer search
opens it to extend it.)

With ``save_models`` (``--save_models``) `conclude` also keeps the final model, the state the engine left
in `model`, as ``execution_<k>.keras`` beside the record (`model_path`; written atomically, before the
record names it as ``"model_path"``, relative to the record's directory); a resumed or extended
execution rewrites it at its new end.
"""

import dataclasses
import math
import os
import time

import keras

from bpfree import checkpoints, io, records, scoring
from bpfree.reconstructions import ReconstructionFigure
from bpfree.schedule_callback import EpochLearningRate
from bpfree.records import FINISHED
from bpfree.trackers import ActivationHistograms
from bpfree.tuning import early_stopping, inputs, tensorboard_hparams, tensorboard_runs
from bpfree.tuning.early_stopping import ResumableEarlyStopping
from bpfree.tuning.space import trial_id

MODEL_SUFFIX = ".keras"  # `--save_models`: execution_<k>.keras beside execution_<k>.json


class RecordCallback(keras.callbacks.Callback):
    """At every epoch's end: the record with the epoch's logs and end time appended; before it, the
    checkpoint when `checkpoint_seconds` of training have passed since the last one or at the last
    epoch, and at the end of training (early stopping, divergence) — each written atomically, the
    checkpoint first, so a resumed run takes the checkpoint's history as the truth."""

    def __init__(self, execution, num_epochs, checkpoint_seconds):
        super().__init__()
        self.execution = execution
        self.num_epochs = int(num_epochs)
        self.checkpoint_seconds = float(checkpoint_seconds)
        self._last = time.monotonic()
        self._saved = None  # epochs done at the last checkpoint this run wrote

    def on_epoch_end(self, epoch, logs=None):
        run = self.execution
        history = records.with_epoch(run.record.data["history"], logs)
        done = records.epochs_done(history)
        now = time.monotonic()
        if done >= self.num_epochs or now - self._last >= self.checkpoint_seconds:
            self._checkpoint(done, history)
        ends = list(run.record.data.get("epoch_ends", []))[:done - 1] + [time.time()]
        run.record.data["epoch_ends"] = ends
        run.record.save_history(history, now)

    def on_train_end(self, logs=None):
        # The state at the end (early stopping, divergence): what `conclude` keeps as the final state.
        history = self.execution.record.data["history"]
        done = records.epochs_done(history)
        if done and self._saved != done:
            self._checkpoint(done, history)

    def _checkpoint(self, done, history):
        self.execution.before_checkpoint()
        checkpoints.save(self.execution.checkpoint_path, self.model, done, history)
        self._last, self._saved = time.monotonic(), done


@dataclasses.dataclass
class Execution:
    """One execution ready to train: its point's hyperparameters, model (built, restored), open record, first
    epoch, the epochs it trains to (`num_epochs`: the search's, or its Hyperband trial's budget) and the epoch
    its training ends before (`end_epoch`: `num_epochs`, or its first epoch when its history has already met
    early stopping — it trains no more)."""

    hyperparameters: object
    point: dict
    tid: str
    execution: int
    seed: int
    model: object
    record: records.ExecutionRecord
    checkpoint_path: str
    run_dir: str
    first_epoch: int
    history: dict
    config: object
    log: object
    checkpoint_seconds: float = 0.0
    save_models: bool = False
    num_epochs: int = None  # the epochs it trains to: the search's, or its Hyperband trial's budget
    end_epoch: int = None  # None: num_epochs
    score: object = None
    # Called before a checkpoint is written: an engine that holds the state elsewhere copies it into `model`.
    before_checkpoint: object = dataclasses.field(default=lambda: None, repr=False)

    def __post_init__(self):
        if self.num_epochs is None:
            self.num_epochs = self.config.num_epochs
        if self.end_epoch is None:
            self.end_epoch = self.num_epochs

    # ------------------------------------------------------------------------------ open
    @classmethod
    def open(cls, tuner, hyperparameters, point, execution, budget=None):
        """An `Execution` ready to train, or the score of one that needs no training (finished before:
        its score; no model for its point: None). `hyperparameters`: keras-tuner's, holding `point`'s values
        (what the hypermodel builds from); `tuner` gives the search's settings and hypermodel. `budget`: a
        Hyperband trial's (`trials.budget_of`): it trains to ``budget["epochs"]``, not the search's num_epochs,
        and its record's "hyperband" says so (`hyperband_mark`)."""
        config, log = tuner.config, tuner.log
        num_epochs = budget["epochs"] if budget else config.num_epochs
        tid = trial_id(point)
        path = records.execution_path(tuner.experiment_dir, tid, execution)
        checkpoint_path = checkpoints.path_for(path)
        run_dir = os.path.join(tuner.tensorboard_dir, tid, f"execution_{execution}")
        previous = _previous_record(path, log)
        if previous is not None and previous["status"] == "completed" and checkpoints.recover_final(
                checkpoint_path, records.epochs_done(previous["history"])):  # a kill cut its end: repaired
            log(f"  {tid} execution {execution}: its last checkpoint kept as its final state (a kill had cut its end)")
        if previous is not None and records.done(previous, num_epochs):
            return score_of(previous["history"], config)
        extending = previous is not None and previous["status"] in FINISHED  # completed, the search now longer
        seed = tuner.execution_seed(execution)
        keras.utils.set_random_seed(seed)

        def new_record(aside="interrupted"):
            return _new_record(tuner.experiment_dir, path, tid, execution, point, seed, checkpoint_path, run_dir,
                               config, aside)

        try:
            model = tuner.hypermodel.build(hyperparameters, seed=seed)
        except Exception as e:
            # No model exists for this point (a ValueError): a property of the point, final. Anything
            # else (out of memory, ...) is an accident, retried by the next run.
            fail(new_record(), "failed" if isinstance(e, ValueError) else "error", e, log, tuner.accidents)
            return None
        final = checkpoints.path_for(path, checkpoints.FINAL_SUFFIX)
        if extending:  # from its final state; without one (records from before it was kept) it runs again whole
            first_epoch, history = _restore([final], model, log)
        elif previous is not None:  # interrupted: its last checkpoint (or the final state an extension started from)
            first_epoch, history = _restore([checkpoint_path, final], model, log)
        else:
            first_epoch, history = 0, {}
        # Its history may have met early stopping already (killed after the checkpoint of the epoch that
        # stopped it; or stopped at the last epoch of a shorter search): it is done, it trains no more.
        stopped = (0 < first_epoch < num_epochs and config.use_early_stopping and early_stopping.stopped(
            history, config.objective, config.early_stopping_patience))
        if first_epoch:
            record = records.ExecutionRecord.resume(path)
            record.restore_history(history)
            record.data["epoch_ends"] = list(record.data.get("epoch_ends", []))[:first_epoch]
            record.data["search"] = config.to_json()
            if not (extending and stopped):
                record.data.setdefault("extended_at_epochs" if extending else "resumed_at_epochs", []).append(
                    first_epoch)
            if stopped:
                verb = (f"not extended: early stopping ended it at epoch {first_epoch}" if extending
                        else f"resuming at epoch {first_epoch}: early stopping ended it there")
                log(f"  {tid} execution {execution}: {verb}; nothing more to train")
            else:
                verb = f"extending to {num_epochs} epochs" if extending else "resuming"
                log(f"  {tid} execution {execution}: {verb} at epoch {first_epoch}")
        else:
            record = new_record(aside="superseded" if extending else "interrupted")
        record.data["worker"] = tuner.tuner_id
        if tuner.confirmation:  # a chosen configuration re-run after the selection (`bpfree.tuning.confirmation`)
            record.data["confirmation"] = True
        record.data["data_source"] = tuner.data_source  # this run's (a resumed record may have had another)
        if budget:
            record.data["hyperband"] = hyperband_mark(previous, budget)
        record.start(time.monotonic())
        return cls(hyperparameters, point, tid, execution, seed, model, record, checkpoint_path, run_dir, first_epoch,
                   history, config, log, tuner.checkpoint_seconds, tuner.options.save_models, num_epochs=num_epochs,
                   end_epoch=first_epoch if stopped else num_epochs)

    # ------------------------------------------------------------------------------ train
    def callbacks(self, data):
        """The Keras callbacks of this execution's training, whichever engine trains it."""
        c = self.config
        # The epoch's learning rate first: it is set before the epoch and logged ("learning_rate") before the record is written.
        callbacks = [] if c.lr_schedule == "constant" else [EpochLearningRate(
            self.point["lr"], c.lr_schedule, lambda: self.record.data["history"], milestones=c.lr_milestones,
            factor=c.lr_factor, patience=c.lr_patience, num_epochs=c.num_epochs)]
        callbacks += [
            RecordCallback(self, self.num_epochs, self.checkpoint_seconds),
            # One run per execution (tags loss/train, loss/validation, ...), its earlier epochs rewritten from the record.
            tensorboard_runs.EpochScalars(self.run_dir, self.history, self.record.data.get("epoch_ends", [])),
        ]
        if c.use_early_stopping:
            callbacks.append(ResumableEarlyStopping(c.objective, c.early_stopping_patience,
                                                    past=self.history.get(c.objective, [])))
        flatten = inputs.flattens(self.point["arch"])
        if c.histogram_freq:
            histograms = ActivationHistograms(self.run_dir, data.sample(flatten), c.histogram_freq)
            histograms.log_dir = self.run_dir  # in the execution's one run, not a train/ sub-run
            callbacks.append(histograms)
        if c.problem_type == "reconstruction":  # sample inputs beside their reconstructions, at the end
            callbacks.append(ReconstructionFigure(self.run_dir, data.sample(flatten), c.dataset_info().input_shape))
        return callbacks

    # ------------------------------------------------------------------------------ end
    def conclude(self):
        """Ends a trained execution's record (completed, or diverged when a loss was not finite) and sets its score."""
        losses = self.record.data["history"].get("loss", [])
        diverged = any(v is None or not math.isfinite(v) for v in losses)
        self._keep_model()
        if diverged:
            self.record.finish("diverged", wall_clock=time.monotonic())
            checkpoints.remove(self.checkpoint_path)  # a kill before: a stale checkpoint beside a final record, never read
        else:
            # Kept (a search extended to more epochs resumes it from there) before the record says completed:
            # a kill between them leaves a running record beside its final state, whose next run resumes at
            # its last epoch and concludes it, training nothing.
            checkpoints.keep_as_final(self.checkpoint_path)
            self.record.finish("completed", wall_clock=time.monotonic())
        tensorboard_hparams.write_run(self.run_dir, self.point, self.execution, self.seed, self.record.data["history"])
        self.score = None if diverged else score_of(self.record.data["history"], self.config)

    def _keep_model(self):
        """The final model written as `model_path` and named in the record (``--save_models``); without
        it, a model an earlier run of this execution kept is removed (it is not this record's end)."""
        path = model_path(self.record.path)
        if self.save_models:
            io.write_atomic(path, self.model.save, MODEL_SUFFIX)  # Keras saves only to a name ending .keras
            self.record.data["model_path"] = os.path.basename(path)
        else:
            checkpoints.remove(path)
            self.record.data.pop("model_path", None)

    def fail(self, status, exception, accidents):
        """Ends the record with `status` ("failed" or "error") and the exception's message."""
        fail(self.record, status, exception, self.log, accidents)


def fail(record, status, exception, log, accidents):
    """Ends `record` with `status` and the exception's message, and says so in one line; an "error" (an
    accident the next run retries) is appended to `accidents` as (trial id, execution, message)."""
    error = f"{type(exception).__name__}: {exception}"
    what = {"failed": "failed (no model for this point)", "error": "error; it runs again when the search is re-run"}
    log(f"  {record.data['trial_id']} execution {record.data['execution']}: {what[status]}: "
        f"{error.splitlines()[0][:300]}")
    if status == "error":
        accidents.append((record.data["trial_id"], record.data["execution"], error))
    try:
        record.finish(status, error=error, wall_clock=time.monotonic())
    except OSError as e:  # the disk that failed the run may refuse the record too
        log(f"  could not write {record.path}: {e}")


def hyperband_mark(previous, budget):
    """A Hyperband execution's record field: {"bracket": s, "budgets": the budgets its `previous` record ran
    below this one, then this one's epochs} (a round re-run after an accident is not counted twice)."""
    before = ((previous or {}).get("hyperband") or {}).get("budgets") or []
    return {"bracket": budget["bracket"], "budgets": [b for b in before if b < budget["epochs"]] + [budget["epochs"]]}


def model_path(record_path):
    """Where `--save_models` keeps the final model of the execution whose record is `record_path`."""
    return record_path[: -len(".json")] + MODEL_SUFFIX


def score_of(history, config):
    """An execution's score (`bpfree.scoring`: its final epoch's objective, its best, or the mean of its
    last k), None if it has none."""
    value, _ = scoring.execution_score(history, config.objective, config.score)
    return value if math.isfinite(value) else None


def finite_or_none(logs):
    """A test evaluation's logs as the record keeps them: floats, None where not finite."""
    return {name: (float(v) if math.isfinite(float(v)) else None) for name, v in logs.items()}


def _previous_record(path, log):
    """The execution's record if it has a valid one; a corrupt one is moved aside (named in one line)."""
    if not os.path.exists(path):
        return None
    try:
        return records.read(path)
    except records.RecordError as e:
        aside = records.set_aside(path, "corrupt")
        log(f"  corrupt record moved aside to {aside}; its execution runs again ({e})")
        return None


def _restore(paths, model, log):
    """(epochs done, history) from the first of the execution's checkpoints `paths` that exists and can be
    restored, or (0, {}) to start over. A corrupt one (unreadable, another execution's, another model's)
    is named in one line and moved aside (``corrupt_*``); the next one (its last good state) is tried."""
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            return checkpoints.restore(path, model)
        except checkpoints.CheckpointError as e:
            aside = records.set_aside(path, "corrupt")
            log(f"  {e}; moved aside to {os.path.basename(aside)}, the execution goes on from its last good state "
                "or starts over")
    return 0, {}


def _new_record(experiment_dir, path, tid, execution, point, seed, checkpoint_path, run_dir, config, aside):
    """A fresh record; an earlier attempt's record and TensorBoard run are kept aside (named `aside`)."""
    if os.path.exists(path):
        records.set_aside(path, aside)
    if os.path.isdir(run_dir):
        records.set_aside(run_dir, aside)
    checkpoints.remove(checkpoint_path)
    checkpoints.remove(checkpoints.path_for(path, checkpoints.FINAL_SUFFIX))
    checkpoints.remove(model_path(path))
    return records.ExecutionRecord(experiment_dir, tid, execution, point, seed=seed, search=config.to_json())
