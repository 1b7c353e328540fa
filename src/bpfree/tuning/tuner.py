"""The tuner: runs a grid point's executions, each recorded and checkpointed to disk as it trains."""

import collections
import dataclasses
import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from bpfree import checkpoints, records, schedules, scoring
from bpfree.reconstructions import ReconstructionFigure
from bpfree.records import FINISHED
from bpfree.trackers import ActivationHistograms
from bpfree.tuning import distributed, group, inputs, progress, tensorboard_hparams
from bpfree.tuning.test_each_epoch import EpochTestCallback, logs_with_test
from bpfree.tuning.space import trial_id

TrialStatus = keras_tuner.engine.trial.TrialStatus


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

    def __init__(self, oracle, hypermodel, experiment_dir, config, log=print, group_size=0, points=(),
                 data_source=None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.data_source = data_source  # `datasets.source`: each record's "data_source" (not a search setting)
        # Executions of each structure in the grid: a program never has more slots than its structure
        # has executions (each slot is traced, so spare slots cost time and train nothing).
        self._structure_executions = collections.Counter(group.structure_key(p) for p in points)
        self.group_size = int(group_size)  # executions per group program; 0: one at a time through fit
        # Trials taken from the oracle at a time: enough to fill a program with their executions.
        self.trials_per_group = max(1, -(-self.group_size // config.executions_per_trial))
        self._programs = {}  # structure key → GroupProgram, reused by every group of that structure
        self.experiment_dir = experiment_dir
        self.config = config
        total = len(points) * config.executions_per_trial
        self.progress = progress.SearchProgress(config.objective, config.num_epochs, total)

        def log_line(*args):  # the progress line makes way for the search's own lines
            self.progress.clear()
            log(*args)

        self.log = log_line
        self.tensorboard_dir = os.path.join(experiment_dir, "tensorboard")
        self.fit_seconds = 0.0
        self.trials_run = 0
        self.accidents = []  # (trial id, execution, error) of this process

    def _activate_all_conditions(self):
        # The hypermodel declares every conditional hparam itself; no exploratory model builds.
        pass

    # ------------------------------------------------------------------------------ search
    def search(self, data=None, **unused):
        """keras-tuner's search loop, taking up to `trials_per_group` trials at a time from the oracle
        (one oracle key per held trial, ``<tuner id>~<k>``: keras-tuner's oracle holds one running
        trial per key) and training their executions in group programs of `group_size` slots, one
        program per structure (`bpfree.tuning.group`); keras-tuner's own loop (one trial at a time,
        each execution through `fit`) when `group_size` is 0."""
        if self.group_size < 1 or distributed.role() == "chief":  # the chief only serves the oracle
            return super().search(*(() if data is None else (data,)))
        self.on_search_begin()
        keys = [self.tuner_id] + [f"{self.tuner_id}~{k}" for k in range(1, self.trials_per_group)]
        asked, told = [], set()
        while True:
            trials = []
            for key in keys:
                trial = self._create_trial(key, told)
                if key not in asked:
                    asked.append(key)
                if trial is None:
                    told.add(key)
                    break
                trials.append(trial)
            if not trials:
                break
            self._run_trials(trials, data)
        for key in asked:  # every key that asked is told the grid is done (the chief waits for that)
            if key not in told:
                if self._create_trial(key, told) is not None:
                    raise RuntimeError(f"The oracle handed out a trial to {key} after saying the grid is done.")
                told.add(key)
        self.on_search_end()

    def _create_trial(self, key, told):
        """The oracle's next trial for `key`, or None when the grid is done.

        `told`: the keys of this tuner already told the grid is done. Once one has been, a coordinator
        that has gone away (its reply to the last key can be cut when it exits) is the grid's end too:
        every trial this tuner held has been reported by then (`distributed.coordinator_gone`)."""
        while True:
            try:
                trial = self.oracle.create_trial(key)
            except Exception as e:
                if told and distributed.coordinator_gone(e):
                    self.log(f"  the coordinator has closed after telling {self.tuner_id} the grid is done")
                    return None
                raise
            if trial.status == TrialStatus.STOPPED:
                return None
            if trial.status != TrialStatus.IDLE:
                return trial

    def _run_trials(self, trials, data):
        """Runs `trials` (their executions grouped by structure) and reports each to the oracle."""
        for trial in trials:
            self.on_trial_begin(trial)
        scores = {}
        for group in _by_structure(trials):
            scores.update(self._run_group(group, data))
        for trial in trials:
            try:
                metrics = self._trial_metrics(trial, [scores[(trial.trial_id, e)]
                                                      for e in range(self.config.executions_per_trial)])
                self.oracle.update_trial(trial.trial_id, metrics)
                trial.status = TrialStatus.COMPLETED
            except keras_tuner.errors.FailedTrialError as e:
                trial.status = TrialStatus.FAILED
                trial.message = str(e)
            self.on_trial_end(trial)

    def run_trial(self, trial, data, **unused):
        scores = self._run_group([trial], data)
        return self._trial_metrics(trial, [scores[(trial.trial_id, e)] for e in range(self.config.executions_per_trial)])

    def _trial_metrics(self, trial, scores):
        """The trial's objective: the mean over its executions that finished with a finite score."""
        tid = trial_id(dict(trial.hyperparameters.values))
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if not finite:
            raise keras_tuner.errors.FailedTrialError(f"Trial {tid}: no execution finished with a finite objective.")
        return {self.config.objective: float(np.mean(finite))}

    # ------------------------------------------------------------------------------ executions
    def _run_group(self, trials, data):
        """Every execution of `trials` (one structure): {(keras-tuner trial id, execution): score or None}.
        Executions whose models the group program can train share programs; the others run one at a time."""
        scores, ready = {}, []
        for trial in trials:
            self.trials_run += 1
            point = dict(trial.hyperparameters.values)
            for execution in range(self.config.executions_per_trial):
                run = self._prepare(trial, point, execution)
                if isinstance(run, _Execution):
                    ready.append(run)
                else:
                    scores[(trial.trial_id, execution)] = run
                    self._log_score(trial_id(point), execution, run)
        together = self.group_size >= 1 and bool(ready)
        if together and (reason := group.unstackable(ready[0].model)):
            together = False
            self.log(f"  {ready[0].tid}: its executions train one at a time ({reason})")
        if together:
            for first_epoch in sorted({run.first_epoch for run in ready}):
                runs = [run for run in ready if run.first_epoch == first_epoch]
                for start in range(0, len(runs), self.group_size):
                    self._train_together(runs[start:start + self.group_size], data)
        else:
            for run in ready:
                self._train_alone(run, data)
        for run in ready:
            scores[(run.trial.trial_id, run.execution)] = run.score
            self._log_score(run.tid, run.execution, run.score)
        return scores

    def _log_score(self, tid, execution, score):
        shown = "none (no finite score)" if score is None else f"{score:.4g}"
        self.log(f"  {tid} execution {execution}: {self.config.objective} ({self.config.score}) = {shown}")

    def _prepare(self, trial, point, execution):
        """An `_Execution` ready to train (model built, checkpoint restored, record open), or the score of
        one that needs no training (finished before: its score; no model for its point: None)."""
        tid = trial_id(point)
        path = records.execution_path(self.experiment_dir, tid, execution)
        checkpoint_path = checkpoints.path_for(path)
        run_dir = os.path.join(self.tensorboard_dir, tid, f"execution_{execution}")
        previous = self._previous_record(path)
        if previous is not None and records.done(previous, self.config.num_epochs):
            return _score(previous["history"], self.config.objective, self.config.score)
        extending = previous is not None and previous["status"] in FINISHED  # completed, the search now longer
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
        final = checkpoints.path_for(path, checkpoints.FINAL_SUFFIX)
        if extending:  # from its final state; without one (records from before it was kept) it runs again whole
            first_epoch, history = self._restore(final, model)
        elif previous is not None:  # interrupted: its last checkpoint (or the final state an extension started from)
            first_epoch, history = self._restore(checkpoint_path if os.path.exists(checkpoint_path) else final, model)
        else:
            first_epoch, history = 0, {}
        if first_epoch:
            record = records.ExecutionRecord.resume(path)
            record.restore_history(history)
            record.data["search"] = self.config.to_json()
            record.data.setdefault("extended_at_epochs" if extending else "resumed_at_epochs", []).append(first_epoch)
            verb = f"extending to {self.config.num_epochs} epochs" if extending else "resuming"
            self.log(f"  {tid} execution {execution}: {verb} at epoch {first_epoch}")
        else:
            record = self._new_record(path, tid, execution, point, seed, checkpoint_path, run_dir,
                                      aside="superseded" if extending else "interrupted")
        record.data["worker"] = self.tuner_id
        record.data["data_source"] = self.data_source  # this run's (a resumed record may have had another)
        record.start(time.monotonic())
        return _Execution(trial, point, tid, execution, seed, model, record, checkpoint_path, run_dir,
                          first_epoch, history)

    def _callbacks(self, run, data):
        """The callbacks of one execution's training, whichever way it trains (`fit`, or a group program's slot)."""
        c = self.config
        # The epoch's learning rate first: it is set before the epoch and logged ("learning_rate") before the record is written.
        callbacks = [] if c.lr_schedule == "constant" else [schedules.EpochLearningRate(
            run.point["lr"], c.lr_schedule, lambda: run.record.data["history"], milestones=c.lr_milestones,
            factor=c.lr_factor, patience=c.lr_patience, num_epochs=c.num_epochs)]
        callbacks += [
            RecordCallback(run.record, run.checkpoint_path),
            keras.callbacks.TensorBoard(run.run_dir, histogram_freq=0, write_graph=False, profile_batch=0),
        ]
        if self.config.use_early_stopping:
            callbacks.append(ResumableEarlyStopping(self.config.objective, self.config.early_stopping_patience,
                                                    past=run.history.get(self.config.objective, [])))
        if self.config.histogram_freq:
            flatten = inputs.flattens(run.point["arch"])
            callbacks.append(ActivationHistograms(run.run_dir, data.sample(flatten), self.config.histogram_freq))
        if self.config.problem_type == "reconstruction":  # sample inputs beside their reconstructions, at the end
            callbacks.append(ReconstructionFigure(run.run_dir, data.sample(inputs.flattens(run.point["arch"])),
                                                  self.config.dataset_info().input_shape))
        return callbacks

    def _train_alone(self, run, data):
        """Today's path: the execution's own model, fed by its own pipeline through `fit`."""
        flatten = inputs.flattens(run.point["arch"])  # image batches for a conv arch, flat ones for a dense one
        callbacks = self._callbacks(run, data) + [keras.callbacks.TerminateOnNaN(), _ProgressCallback(self)]
        if self.config.test_each_epoch:  # first: the record's callback must see the test metrics
            callbacks.insert(0, EpochTestCallback(data.test(flatten)))
        start = time.perf_counter()
        self.progress.start(run.tid, 1, run.first_epoch)
        try:
            train = data.train(run.seed, run.first_epoch, flatten=flatten)
            run.model.fit(train, validation_data=data.validation(flatten), epochs=self.config.num_epochs,
                          initial_epoch=run.first_epoch, steps_per_epoch=data.steps_per_epoch,
                          callbacks=callbacks, verbose=0, shuffle=False)  # the pipeline shuffles
            test = run.model.evaluate(data.test(flatten), verbose=0, return_dict=True)
            run.record.data["test"] = _finite_or_none(test)
        except KeyboardInterrupt as e:
            self._finish(run.record, "error", e)
            raise
        except Exception as e:  # an accident (I/O, memory, a bug): recorded, retried by the next run
            self._finish(run.record, "error", e)
            return
        finally:
            self.fit_seconds += time.perf_counter() - start
            self.progress.finish(1)
            keras.backend.clear_session(free_memory=False)
        self._conclude(run)

    def _train_together(self, runs, data):
        """`runs` (one structure, one first epoch) trained in the slots of one group program."""
        program = self._program(runs, data)
        size = program.size
        for slot, run in enumerate(runs):
            program.load(slot, run.model)
        slots = program.models
        flatten = inputs.flattens(runs[0].point["arch"])
        callbacks = [keras.callbacks.CallbackList(self._callbacks(run, data), model=slots[k])
                     for k, run in enumerate(runs)]
        seeds = [run.seed for run in runs] + [0] * (size - len(runs))
        active = [True] * len(runs) + [False] * (size - len(runs))
        failed = set()

        def each(indices, event):
            """Calls `event(k)` for every slot k in `indices` not failed: an accident in one execution's
            callbacks (a full disk under its record or TensorBoard run) ends that execution as an error
            and its slot trains no more; the others go on."""
            for k in indices:
                if k in failed:
                    continue
                try:
                    event(k)
                except Exception as e:
                    failed.add(k)
                    active[k] = False
                    self._finish(runs[k].record, "error", e)

        start = time.perf_counter()
        self.progress.start(runs[0].tid, len(runs), runs[0].first_epoch)
        try:
            each(range(len(runs)), lambda k: callbacks[k].on_train_begin())
            for epoch in range(runs[0].first_epoch, self.config.num_epochs):
                trained = list(active)
                if not any(trained):
                    break
                each(_indices(trained), lambda k: callbacks[k].on_epoch_begin(epoch))
                active, train_logs = program.train_epoch(seeds, epoch, [a and k not in failed for k, a in
                                                                        enumerate(trained)])
                val_logs = program.evaluate(trained, data.in_memory("validation", flatten))
                test_logs = program.evaluate(trained, data.in_memory("test", flatten)) \
                    if self.config.test_each_epoch else None

                def epoch_end(k):
                    callbacks[k].on_test_begin()
                    callbacks[k].on_test_end(val_logs[k])
                    logs = {**train_logs[k], **{f"val_{n}": v for n, v in val_logs[k].items()}}
                    callbacks[k].on_epoch_end(epoch, logs if test_logs is None else logs_with_test(logs, test_logs[k]))
                    if slots[k].stop_training:  # early stopping
                        active[k] = False

                each(_indices(trained), epoch_end)
                self.progress.epoch(epoch, [{**train_logs[k], **{f"val_{n}": v for n, v in val_logs[k].items()}}.get(
                    self.config.objective) for k in _indices(trained) if k < len(runs)])
            each(range(len(runs)), lambda k: callbacks[k].on_train_end())
            tested = [k < len(runs) and k not in failed for k in range(size)]
            test_logs = program.evaluate(tested, data.in_memory("test", flatten))
            for k in _indices(tested):
                runs[k].record.data["test"] = _finite_or_none(test_logs[k])
        except KeyboardInterrupt as e:
            for k, run in enumerate(runs):
                if k not in failed:
                    self._finish(run.record, "error", e)
            raise
        except Exception as e:  # an accident in the program: its executions are recorded, retried by the next run
            for k, run in enumerate(runs):
                if k not in failed:
                    self._finish(run.record, "error", e)
            return
        finally:
            self.fit_seconds += time.perf_counter() - start
            self.progress.finish(len(runs))
        for k, run in enumerate(runs):
            if k not in failed:
                self._conclude(run)

    def _program(self, runs, data):
        """The group program for `runs`' structure, made once per structure (its slots built from the
        first runs' own models' structure) and reused by every later group of that structure."""
        key = group.structure_key(runs[0].point)
        program = self._programs.get(key)
        if program is None:
            flatten = inputs.flattens(runs[0].point["arch"])
            known = self._structure_executions[key] * self.config.executions_per_trial
            capacity = max(len(runs), min(self.group_size, known or self.group_size))
            # This group's own models become the first slots; spare ones (same structure; their state is
            # replaced by `load` before they train) fill the program for the later, fuller groups.
            slots = [run.model for run in runs]
            while len(slots) < capacity:
                slots.append(self.hypermodel.build(runs[0].trial.hyperparameters, seed=runs[0].seed))
            program = group.GroupProgram(slots, data.in_memory("train", flatten), self.config.batch_size,
                                         jit_compile=self.config.jit_compile)
            self._programs[key] = program
        return program

    def _conclude(self, run):
        """Ends a trained execution's record (completed, or diverged when a loss was not finite) and sets its score."""
        losses = run.record.data["history"].get("loss", [])
        diverged = any(v is None or not math.isfinite(v) for v in losses)
        run.record.finish("diverged" if diverged else "completed", wall_clock=time.monotonic())
        if diverged:
            checkpoints.remove(run.checkpoint_path)
        else:  # kept: a search extended to more epochs resumes it from there
            checkpoints.keep_as_final(run.checkpoint_path)
        tensorboard_hparams.write_run(run.run_dir, run.point, run.execution, run.seed, run.record.data["history"])
        run.score = None if diverged else _score(run.record.data["history"], self.config.objective, self.config.score)

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

    def _new_record(self, path, tid, execution, point, seed, checkpoint_path, run_dir, aside="interrupted"):
        """A fresh record; an earlier attempt's record and TensorBoard run are kept aside (named `aside`)."""
        if os.path.exists(path):
            records.set_aside(path, aside)
        if os.path.isdir(run_dir):
            records.set_aside(run_dir, aside)
        checkpoints.remove(checkpoint_path)
        checkpoints.remove(checkpoints.path_for(path, checkpoints.FINAL_SUFFIX))
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


class _ProgressCallback(keras.callbacks.Callback):
    """The progress line of an execution trained through `fit`."""

    def __init__(self, tuner):
        super().__init__()
        self.tuner = tuner

    def on_epoch_end(self, epoch, logs=None):
        self.tuner.progress.epoch(epoch, [(logs or {}).get(self.tuner.config.objective)])


@dataclasses.dataclass
class _Execution:
    """One execution ready to train: its trial, model (built, restored), open record and where it starts."""

    trial: object
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
    score: object = None


def _by_structure(trials):
    """`trials` in groups of one structure (`group.structure_key`), in order of first appearance."""
    groups = {}
    for trial in trials:
        groups.setdefault(group.structure_key(dict(trial.hyperparameters.values)), []).append(trial)
    return list(groups.values())


def _indices(flags):
    return [k for k, flag in enumerate(flags) if flag]


def _score(history, objective, score):
    """An execution's score (`bpfree.scoring`: its final epoch's objective, its best, or the mean of its
    last k), None if it has none."""
    value, _ = scoring.execution_score(history, objective, score)
    return value if math.isfinite(value) else None


def _finite_or_none(logs):
    """A test evaluation's logs as the record keeps them: floats, None where not finite."""
    return {name: (float(v) if math.isfinite(float(v)) else None) for name, v in logs.items()}
