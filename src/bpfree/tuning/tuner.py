"""The tuner: runs a grid point's executions, each recorded to disk as it trains."""

import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from bpfree import records
from bpfree.trackers import ActivationHistograms
from bpfree.tuning import tensorboard_hparams
from bpfree.tuning.space import trial_id

FINISHED = ("completed", "failed", "diverged")


class RecordCallback(keras.callbacks.Callback):
    """Appends every epoch's logs to the execution record (atomic rewrite)."""

    def __init__(self, record):
        super().__init__()
        self.record = record

    def on_epoch_end(self, epoch, logs=None):
        self.record.append_epoch(logs or {}, time.monotonic())


class GridTuner(keras_tuner.Tuner):
    """keras-tuner's Tuner with our `run_trial`: executions with distinct seeds, per-epoch records,
    divergence and failure recorded instead of stopping the search, TensorBoard runs named by the
    recognisable trial id."""

    def __init__(self, oracle, hypermodel, experiment_dir, config, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.experiment_dir = experiment_dir
        self.config = config
        self.tensorboard_dir = os.path.join(experiment_dir, "tensorboard")
        self.fit_seconds = 0.0
        self.trials_run = 0

    def _activate_all_conditions(self):
        # The hypermodel declares every conditional hparam itself; no exploratory model builds.
        pass

    def run_trial(self, trial, train_data, validation_data, histogram_sample=None, log=print, **unused):
        point = dict(trial.hyperparameters.values)
        tid = trial_id(point)
        self.trials_run += 1
        scores = []
        for execution in range(self.config.executions_per_trial):
            score = self._run_execution(trial, point, tid, execution, train_data, validation_data, histogram_sample)
            scores.append(score)
            log(f"  {tid} execution {execution}: {self.config.objective} = {score}")
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if not finite:
            raise keras_tuner.errors.FailedTrialError(f"Trial {tid}: no execution finished with a finite objective.")
        return {self.config.objective: float(np.mean(finite))}

    def _run_execution(self, trial, point, tid, execution, train_data, validation_data, histogram_sample):
        path = records.execution_path(self.experiment_dir, tid, execution)
        if os.path.exists(path):
            previous = records.read(path)
            if previous["status"] in FINISHED:
                return _score(previous["history"], self.config.objective)
            # Interrupted (killed mid-execution): keep its partial record aside and run it again.
            os.replace(path, path.replace("execution_", f"interrupted_{int(time.time())}_execution_"))
        seed = self.config.seed + execution
        keras.utils.set_random_seed(seed)
        model = self.hypermodel.build(trial.hyperparameters, seed=seed)
        record = records.ExecutionRecord(self.experiment_dir, tid, execution, point, seed=seed)
        record.data["worker"] = self.tuner_id
        record.start(time.monotonic())
        run_dir = os.path.join(self.tensorboard_dir, tid, f"execution_{execution}")
        callbacks = [
            RecordCallback(record),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(run_dir, histogram_freq=0, write_graph=False, profile_batch=0),
        ]
        if self.config.use_early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(self.config.objective,
                                                           patience=self.config.early_stopping_patience))
        if self.config.histogram_freq and histogram_sample is not None:
            callbacks.append(ActivationHistograms(run_dir, histogram_sample, self.config.histogram_freq))
        start = time.perf_counter()
        try:
            model.fit(train_data, validation_data=validation_data, epochs=self.config.num_epochs,
                      callbacks=callbacks, verbose=0, shuffle=False)  # the pipeline shuffles
        except Exception as e:  # a broken trial is recorded and the grid goes on
            record.finish("failed", error=f"{type(e).__name__}: {e}", wall_clock=time.monotonic())
            return None
        finally:
            self.fit_seconds += time.perf_counter() - start
            keras.backend.clear_session(free_memory=False)
        losses = record.data["history"].get("loss", [])
        diverged = any(v is None or not math.isfinite(v) for v in losses)
        record.finish("diverged" if diverged else "completed", wall_clock=time.monotonic())
        tensorboard_hparams.write_run(run_dir, point, execution, seed, record.data["history"])
        return None if diverged else _score(record.data["history"], self.config.objective)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        tf.summary.flush()


def _score(history, objective):
    """An execution's objective: its best epoch (as keras-tuner scores), None if never logged."""
    values = [v for v in history.get(objective, []) if v is not None and math.isfinite(v)]
    return min(values) if values else None
