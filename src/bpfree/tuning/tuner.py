"""The tuner: runs a grid point's executions, each recorded and checkpointed to disk as it trains."""

import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from bpfree import checkpoints, records
from bpfree.records import FINISHED
from bpfree.trackers import ActivationHistograms
from bpfree.tuning import inputs, tensorboard_hparams
from bpfree.tuning.space import trial_id


class RecordCallback(keras.callbacks.Callback):
    """At every epoch's end: the checkpoint (model, optimizer, rule state, epochs done, history), then
    the record with the epoch's logs appended — both written atomically, in that order, so a resumed
    run takes the checkpoint's history as the truth."""

    def __init__(self, record, checkpoint_path):
        super().__init__()
        self.record = record
        self.checkpoint_path = checkpoint_path

    def on_epoch_end(self, epoch, logs=None):
        history = records.with_epoch(self.record.data["history"], logs)
        checkpoints.save(self.checkpoint_path, self.model, records.epochs_done(history), history)
        self.record.save_history(history, time.monotonic())


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping that, in a run resumed at epoch k, first replays the monitored values of
    epochs 0..k−1 (from the record), so its best value and patience count are those of the run that was
    never stopped."""

    def __init__(self, monitor, patience, past=()):
        super().__init__(monitor=monitor, patience=patience, mode="min")  # every objective is minimised
        self.past = list(past)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, value in enumerate(self.past):
            if value is not None:
                self.on_epoch_end(epoch, {self.monitor: value})


class GridTuner(keras_tuner.Tuner):
    """keras-tuner's Tuner with our `run_trial`: executions with distinct seeds, per-epoch records and
    checkpoints (a killed execution resumes at its last epoch), divergence recorded as a property of the
    point, accidents (I/O, memory, any other exception in fit) recorded as errors to retry, TensorBoard
    runs named by the recognisable trial id."""

    def __init__(self, oracle, hypermodel, experiment_dir, config, log=print, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.experiment_dir = experiment_dir
        self.config = config
        self.log = log
        self.tensorboard_dir = os.path.join(experiment_dir, "tensorboard")
        self.fit_seconds = 0.0
        self.trials_run = 0
        self.accidents = []  # (trial id, execution, error) of this process

    def _activate_all_conditions(self):
        # The hypermodel declares every conditional hparam itself; no exploratory model builds.
        pass

    def run_trial(self, trial, data, **unused):
        point = dict(trial.hyperparameters.values)
        tid = trial_id(point)
        self.trials_run += 1
        scores = []
        for execution in range(self.config.executions_per_trial):
            score = self._run_execution(trial, point, tid, execution, data)
            scores.append(score)
            self.log(f"  {tid} execution {execution}: {self.config.objective} = {score}")
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if not finite:
            raise keras_tuner.errors.FailedTrialError(f"Trial {tid}: no execution finished with a finite objective.")
        return {self.config.objective: float(np.mean(finite))}

    def _run_execution(self, trial, point, tid, execution, data):
        path = records.execution_path(self.experiment_dir, tid, execution)
        checkpoint_path = checkpoints.path_for(path)
        run_dir = os.path.join(self.tensorboard_dir, tid, f"execution_{execution}")
        previous = self._previous_record(path)
        if previous is not None and previous["status"] in FINISHED:
            return _score(previous["history"], self.config.objective)
        seed = self.config.seed + execution
        keras.utils.set_random_seed(seed)
        try:
            model = self.hypermodel.build(trial.hyperparameters, seed=seed)
        except Exception as e:
            # No model exists for this point (a ValueError): a property of the point, final. Anything
            # else (out of memory, ...) is an accident, retried by the next run.
            status = "failed" if isinstance(e, ValueError) else "error"
            record = self._new_record(path, tid, execution, point, seed, checkpoint_path, run_dir)
            self._finish(record, status, e)
            return None
        first_epoch, history = self._restore(checkpoint_path, model) if previous is not None else (0, {})
        if first_epoch:
            record = records.ExecutionRecord.resume(path)
            record.restore_history(history)
            record.data.setdefault("resumed_at_epochs", []).append(first_epoch)
            self.log(f"  {tid} execution {execution}: resuming at epoch {first_epoch}")
        else:
            record = self._new_record(path, tid, execution, point, seed, checkpoint_path, run_dir)
        record.data["worker"] = self.tuner_id
        record.start(time.monotonic())
        callbacks = [
            RecordCallback(record, checkpoint_path),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(run_dir, histogram_freq=0, write_graph=False, profile_batch=0),
        ]
        if self.config.use_early_stopping:
            callbacks.append(ResumableEarlyStopping(self.config.objective, self.config.early_stopping_patience,
                                                    past=history.get(self.config.objective, [])))
        flatten = inputs.flattens(point["arch"])  # image batches for a conv arch, flat ones for a dense one
        if self.config.histogram_freq:
            callbacks.append(ActivationHistograms(run_dir, data.sample(flatten), self.config.histogram_freq))
        start = time.perf_counter()
        try:
            train = data.train(seed, first_epoch, flatten=flatten)
            model.fit(train, validation_data=data.validation(flatten), epochs=self.config.num_epochs,
                      initial_epoch=first_epoch, steps_per_epoch=data.steps_per_epoch, callbacks=callbacks,
                      verbose=0, shuffle=False)  # the pipeline shuffles
        except KeyboardInterrupt as e:
            self._finish(record, "error", e)
            raise
        except Exception as e:  # an accident (I/O, memory, a bug): recorded, retried by the next run
            self._finish(record, "error", e)
            return None
        finally:
            self.fit_seconds += time.perf_counter() - start
            keras.backend.clear_session(free_memory=False)
        losses = record.data["history"].get("loss", [])
        diverged = any(v is None or not math.isfinite(v) for v in losses)
        record.finish("diverged" if diverged else "completed", wall_clock=time.monotonic())
        checkpoints.remove(checkpoint_path)
        tensorboard_hparams.write_run(run_dir, point, execution, seed, record.data["history"])
        return None if diverged else _score(record.data["history"], self.config.objective)

    def _previous_record(self, path):
        """The execution's record if it has a valid one; a corrupt one is moved aside (named in one line)."""
        if not os.path.exists(path):
            return None
        try:
            return records.read(path)
        except records.RecordError as e:
            aside = records.set_aside(path, "corrupt")
            self.log(f"  corrupt record moved aside to {aside}; its execution runs again ({e})")
            return None

    def _restore(self, checkpoint_path, model):
        """(epochs done, history) from the execution's checkpoint, or (0, {}) to start over."""
        if not os.path.exists(checkpoint_path):
            return 0, {}
        try:
            return checkpoints.restore(checkpoint_path, model)
        except checkpoints.CheckpointError as e:
            aside = records.set_aside(checkpoint_path, "corrupt")
            self.log(f"  {e}; moved aside to {aside}, the execution starts over")
            return 0, {}

    def _new_record(self, path, tid, execution, point, seed, checkpoint_path, run_dir):
        """A fresh record; an earlier attempt's partial record and TensorBoard run are kept aside."""
        if os.path.exists(path):
            records.set_aside(path, "interrupted")
        if os.path.isdir(run_dir):
            records.set_aside(run_dir, "interrupted")
        checkpoints.remove(checkpoint_path)
        return records.ExecutionRecord(self.experiment_dir, tid, execution, point, seed=seed,
                                       search=self.config.to_json())

    def _finish(self, record, status, exception):
        """Ends the record with `status` and the exception's message, and says so in one line."""
        error = f"{type(exception).__name__}: {exception}"
        what = {"failed": "failed (no model for this point)", "error": "error; it runs again when the search is re-run"}
        self.log(f"  {record.data['trial_id']} execution {record.data['execution']}: {what[status]}: "
                 f"{error.splitlines()[0][:300]}")
        if status == "error":
            self.accidents.append((record.data["trial_id"], record.data["execution"], error))
        try:
            record.finish(status, error=error, wall_clock=time.monotonic())
        except OSError as e:  # the disk that failed the run may refuse the record too
            self.log(f"  could not write {record.path}: {e}")

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        tf.summary.flush()


def _score(history, objective):
    """An execution's objective: its best epoch (as keras-tuner scores), None if never logged."""
    values = [v for v in history.get(objective, []) if v is not None and math.isfinite(v)]
    return min(values) if values else None
