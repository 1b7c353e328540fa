"""The tuner: keras-tuner's trial loop around the engine that trains a structure's executions together.

keras-tuner is the trial queue here: `GridOracle` decides which grid point runs next and owns the
state (rebuilt from the records); the tuner takes trials from it and hands their executions
(`bpfree.tuning.execution.Execution`) to the engine: a `MemberProgram` per structure
(`bpfree.tuning.engine`), or Keras `fit` for models the program cannot train (their own train step,
tracker metrics) and when asked for (``EngineOptions(fit=True)``, a debugging path).
"""

import collections
import functools
import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from bpfree import seeds
from bpfree.tuning import distributed, engine, inputs, progress
from bpfree.tuning.execution import Execution, finite_or_none
from bpfree.tuning.options import AUTO_MEMBERS, AUTO_MEMBERS_WITHOUT_XLA, EngineOptions, program_members, structure_key
from bpfree.tuning.test_each_epoch import EpochTestCallback, logs_with_test
from bpfree.tuning.space import trial_id
from bpfree.tuning.trials import by_structure, point_of

TrialStatus = keras_tuner.engine.trial.TrialStatus


class GridTuner(keras_tuner.Tuner):
    """keras-tuner's Tuner with our `run_trial`: executions with distinct seeds, per-epoch records and
    checkpoints (a killed execution resumes at its last epoch), divergence recorded as a property of the
    point, accidents (I/O, memory, any other exception in fit) recorded as errors to retry, TensorBoard
    runs named by the recognisable trial id."""

    def __init__(self, oracle, hypermodel, experiment_dir, config, log=print, engine_options=None, points=(),
                 data_source=None, confirmation_of=None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        # Execution k's seed: the search's (seed + k), or, for the confirmation executions of a search
        # (`bpfree.tuning.confirmation`; `confirmation_of` their count), seeds no grid execution used.
        self.confirmation = confirmation_of is not None
        self.execution_seed = (functools.partial(seeds.confirmation, config.seed, count=confirmation_of)
                               if self.confirmation else functools.partial(seeds.execution, config.seed))
        self.data_source = data_source  # `datasets.source`: each record's "data_source" (not a search setting)
        self.options = engine_options or EngineOptions()
        self.checkpoint_seconds = self.options.checkpoint_seconds
        # Executions of each structure in the grid: a program never has more members than that.
        self._structure_executions = collections.Counter(structure_key(p) for p in points)
        # Trials taken from the oracle at a time: enough to fill a program with their executions.
        most = self.options.members or (AUTO_MEMBERS[_device()] if config.jit_compile else AUTO_MEMBERS_WITHOUT_XLA)
        self.trials_per_group = 1 if self.options.fit else max(1, -(-most // config.executions_per_trial))
        if getattr(oracle, "one_trial_at_a_time", False):  # bayesian: each trial proposed from all finished before it
            self.trials_per_group = 1  # a program holds one trial's executions at a time
            self._structure_executions = collections.Counter(dict.fromkeys(self._structure_executions, 1))
        self._programs = {}  # structure key → MemberProgram, reused by every group of that structure
        self.experiment_dir = experiment_dir
        self.config = config
        total = getattr(oracle, "trials_planned", len(points)) * config.executions_per_trial
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
        trial per tuner id) and training their
        executions as the members of one program per structure (`bpfree.tuning.engine`); keras-tuner's
        own loop (one trial at a time, each execution through `fit`) with ``EngineOptions(fit=True)``."""
        if self.options.fit or distributed.role() == "chief":  # the chief only serves the oracle
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
        for group in by_structure(trials):
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
        tid = trial_id(point_of(trial))
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if not finite:
            raise keras_tuner.errors.FailedTrialError(f"Trial {tid}: no execution finished with a finite objective.")
        return {self.config.objective: float(np.mean(finite))}

    # ------------------------------------------------------------------------------ executions
    def _run_group(self, trials, data):
        """Every execution of `trials` (one structure): {(keras-tuner trial id, execution): score or None}.
        Executions the member program can train share programs; the others train through `fit`."""
        scores, ready = {}, []
        for trial in trials:
            self.trials_run += 1
            point = point_of(trial)
            for execution in range(self.config.executions_per_trial):
                run = Execution.open(self, trial, point, execution)
                if isinstance(run, Execution):
                    ready.append(run)
                else:
                    scores[(trial.trial_id, execution)] = run
                    self._log_score(trial_id(point), execution, run)
        together = not self.options.fit and bool(ready)
        if together and (reason := engine.unvectorizable(ready[0].model)):
            together = False
            self.log(f"  {ready[0].tid}: its executions train through fit ({reason})")
        if together:
            # One program per structure (per seed too where the rule's step reads it), its members
            # starting at one epoch.
            groups = {}
            for run in ready:
                groups.setdefault((structure_key(run.point, run.seed), run.first_epoch), []).append(run)
            for (_, _), runs in sorted(groups.items(), key=lambda item: item[0][1]):
                program = self._program(runs, data)
                for start in range(0, len(runs), program.capacity):
                    self._train_members(program, runs[start:start + program.capacity], data)
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

    def _train_alone(self, run, data):
        """The fallback: the execution's own model, fed by its own pipeline through `fit`."""
        flatten = inputs.flattens(run.point["arch"])  # image batches for a conv arch, flat ones for a dense one
        callbacks = run.callbacks(data) + [keras.callbacks.TerminateOnNaN(), _ProgressCallback(self)]
        if self.config.test_each_epoch:  # first: the record's callback must see the test metrics
            callbacks.insert(0, EpochTestCallback(data.test(flatten)))
        run.record.data["engine"] = {"fit": True, "xla": self.config.jit_compile}
        start = time.perf_counter()
        self.progress.start(run.tid, 1, run.first_epoch)
        try:
            train = data.train(run.seed, run.first_epoch, flatten=flatten)
            run.model.fit(train, validation_data=data.validation(flatten), epochs=run.end_epoch,
                          initial_epoch=run.first_epoch, steps_per_epoch=data.steps_per_epoch,
                          callbacks=callbacks, verbose=0, shuffle=False)  # the pipeline shuffles
            test = run.model.evaluate(data.test(flatten), verbose=0, return_dict=True)
            run.record.data["test"] = finite_or_none(test)
        except KeyboardInterrupt as e:
            run.fail("error", e, self.accidents)
            raise
        except Exception as e:  # an accident (I/O, memory, a bug): recorded, retried by the next run
            run.fail("error", e, self.accidents)
            return
        finally:
            self.fit_seconds += time.perf_counter() - start
            self.progress.finish(1)
            keras.backend.clear_session(free_memory=False)
        run.conclude()

    def _train_members(self, program, runs, data):
        """`runs` (one structure, one first epoch, at most the program's capacity) trained as its members."""
        size = program.capacity
        split = data.in_memory("train", inputs.flattens(runs[0].point["arch"]))
        for slot, run in enumerate(runs):
            engine.prepare(run.model, split)
            program.load(slot, run.model)
            # A checkpoint is of the member's state: copied into its model only when one is written.
            run.before_checkpoint = lambda slot=slot, run=run: program.unload(slot, run.model)
            # How it trained (not a search setting): without XLA a member's numbers depend on the program's size.
            run.record.data["engine"] = {"members": program.capacity, "xla": program.jit_compile,
                                         "vectorized": program.vectorized}
        whole_state_each_epoch = bool(self.config.histogram_freq)
        models = [run.model for run in runs] + [None] * (size - len(runs))
        flatten = inputs.flattens(runs[0].point["arch"])
        callbacks = [keras.callbacks.CallbackList(run.callbacks(data), model=run.model) for run in runs]
        member_seeds = [run.seed for run in runs] + [0] * (size - len(runs))
        active = [run.first_epoch < run.end_epoch for run in runs] + [False] * (size - len(runs))  # none: stopped early
        failed = set()

        def each(indices, event):
            """Calls `event(k)` for every member k in `indices` not failed: an accident in one execution's
            callbacks (a full disk under its record or TensorBoard run) ends that execution as an error
            and its member trains no more; the others go on."""
            for k in indices:
                if k in failed:
                    continue
                try:
                    event(k)
                except Exception as e:
                    failed.add(k)
                    active[k] = False
                    runs[k].fail("error", e, self.accidents)

        def epoch_begin(k, epoch):
            callbacks[k].on_epoch_begin(epoch)
            program.set_learning_rate(k, runs[k].model)  # a schedule sets it in on_epoch_begin

        def epoch_end(k, epoch, active, train_logs, val_logs, test_logs):
            callbacks[k].on_test_begin()
            callbacks[k].on_test_end(val_logs[k])
            logs = {**train_logs[k], **{f"val_{n}": v for n, v in val_logs[k].items()}}
            callbacks[k].on_epoch_end(epoch, logs if test_logs is None else logs_with_test(logs, test_logs[k]))
            if runs[k].model.stop_training:  # early stopping
                active[k] = False

        start = time.perf_counter()
        self.progress.start(runs[0].tid, len(runs), runs[0].first_epoch)
        try:
            each(range(len(runs)), lambda k: callbacks[k].on_train_begin())
            for epoch in range(runs[0].first_epoch, self.config.num_epochs):
                trained = [a and k not in failed for k, a in enumerate(active)]
                if not any(trained):
                    break
                each(_indices(trained), functools.partial(epoch_begin, epoch=epoch))
                active = program.train_epoch(member_seeds, epoch, trained)
                train_logs = {k: program.train_logs(k, runs[k].model) for k in _indices(trained)}
                if whole_state_each_epoch:  # callbacks that read the weights every epoch (histograms)
                    each(_indices(trained), lambda k: program.unload(k, runs[k].model))
                val_logs = program.evaluate(trained, data.in_memory("validation", flatten), models)
                test_logs = program.evaluate(trained, data.in_memory("test", flatten), models) \
                    if self.config.test_each_epoch else None

                each(_indices(trained), functools.partial(epoch_end, epoch=epoch, active=active, train_logs=train_logs,
                                                          val_logs=val_logs, test_logs=test_logs))
                self.progress.epoch(epoch, [{**train_logs[k], **{f"val_{n}": v for n, v in val_logs[k].items()}}.get(
                    self.config.objective) for k in _indices(trained)])
            each(range(len(runs)), lambda k: program.unload(k, runs[k].model))  # the state at the end
            each(range(len(runs)), lambda k: callbacks[k].on_train_end())
            tested = [k < len(runs) and k not in failed for k in range(size)]
            test_logs = program.evaluate(tested, data.in_memory("test", flatten), models)
            for k in _indices(tested):
                runs[k].record.data["test"] = finite_or_none(test_logs[k])
        except KeyboardInterrupt as e:
            for k, run in enumerate(runs):
                if k not in failed:
                    run.fail("error", e, self.accidents)
            raise
        except Exception as e:  # an accident in the program: its executions are recorded, retried by the next run
            for k, run in enumerate(runs):
                if k not in failed:
                    run.fail("error", e, self.accidents)
            return
        finally:
            self.fit_seconds += time.perf_counter() - start
            self.progress.finish(len(runs))
        for k, run in enumerate(runs):
            if k not in failed:
                run.conclude()

    def _program(self, runs, data):
        """The member program of `runs`' structure, made once per structure and reused by every later group
        of it; its template is the first group's first model (its variables are only the keys the traced
        step reads members' values through)."""
        key = structure_key(runs[0].point, runs[0].seed)
        program = self._programs.get(key)
        if program is None:
            flatten = inputs.flattens(runs[0].point["arch"])
            model = runs[0].model
            points = self._structure_executions[structure_key(runs[0].point)]
            per_seed = len(key) > len(structure_key(runs[0].point))  # a program per seed (`Rule.seed_in_step`)
            known = points * (1 if per_seed else self.config.executions_per_trial)
            activations = self.config.batch_size * sum(int(np.prod(v.shape)) for v in model.trainable_variables
                                                       if len(v.shape) == 1)
            jit = self.config.jit_compile
            size = program_members(self.options, jit, max(len(runs), known or len(runs)), model.count_params(),
                                   activations, _device())
            program = engine.MemberProgram(model, size, data.in_memory("train", flatten), self.config.batch_size,
                                           jit_compile=jit)
            if program.fallback:  # an op with no vectorized form (a program of one member has nothing to vectorize)
                self.log(f"  {runs[0].tid}: its structure's members are computed one after another in their "
                         f"program ({program.fallback})")
            self._programs[key] = program
        return program

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


def _indices(flags):
    return [k for k, flag in enumerate(flags) if flag]


def _device():
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
