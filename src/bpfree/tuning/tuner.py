"""The tuner: keras-tuner's own search loop, each trial's executions trained by the engine.

keras-tuner is used through its public contract: `Tuner.search` asks the oracle for one trial at a time
per tuner, `run_trial` trains it and returns its metrics. A trial is a *cohort* (`bpfree.tuning.trials`):
one or more grid points of one structure, handed out together by `GridOracle` (which owns the state,
rebuilt from the records) so that their executions train as the members of one program
(`bpfree.tuning.engine.MemberProgram`). Models the program cannot train (their own train step, tracker
metrics) train through Keras `fit`, as does everything when asked for (``EngineOptions(fit=True)``, a
debugging path). Each execution's life is `bpfree.tuning.execution.Execution`.
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
from bpfree.tuning import engine, inputs, progress
from bpfree.tuning.execution import Execution, finite_or_none
from bpfree.tuning.options import EngineOptions, program_members, structure_key
from bpfree.tuning.test_each_epoch import EpochTestCallback, logs_with_test
from bpfree.tuning.space import trial_id
from bpfree.tuning.trials import budget_of, point_hyperparameters, points_of


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
        # Executions of each structure a trial can hold: a program never has more members than that.
        self._structure_executions = collections.Counter(structure_key(p) for p in points)
        if getattr(oracle, "cohort_size", 1) == 1:  # one point per trial (bayesian, fit, programs of one member)
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

    # ------------------------------------------------------------------------------ trials
    def run_trial(self, trial, data, **unused):
        """Trains every execution of the trial's grid points (its cohort) and returns the trial's metrics.

        An accident inside an execution is recorded on it (`Execution.fail`) and the others go on. One
        outside them (making a program, a bug) is said in one line here: keras-tuner's loop then marks the
        trial invalid and goes on, and the trial's executions, left unfinished, make the search end
        incomplete (exit 3), so that re-running it retries them."""
        points = points_of(trial)
        try:
            scores = self._run_group(trial, points, data)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            self.log(f"  {', '.join(trial_id(p) for p in points)}: error; it runs again when the search is "
                     f"re-run: {error.splitlines()[0][:300]}")
            self.accidents.extend((trial_id(p), None, error) for p in points)
            raise
        return self._trial_metrics(points, scores)

    def _trial_metrics(self, points, scores):
        """The trial's objective: its best point's, a point's being the mean over its executions that finished
        with a finite score (`scores`: {(trial id, execution): score or None}). keras-tuner keeps it; the
        search's results are read from the records (`bpfree.results`)."""
        means = []
        for point in points:
            tid = trial_id(point)
            finite = [s for (t, _), s in scores.items() if t == tid and s is not None and math.isfinite(s)]
            if finite:
                means.append(float(np.mean(finite)))
        if not means:
            ids = ", ".join(trial_id(p) for p in points)
            raise keras_tuner.errors.FailedTrialError(f"Trial {ids}: no execution finished with a finite objective.")
        return {self.config.objective: min(means)}

    # ------------------------------------------------------------------------------ executions
    def _run_group(self, trial, points, data):
        """Every execution of `points` (one structure, `trial`'s cohort): {(trial id, execution): score or
        None}. Executions the member program can train share programs; the others train through `fit`."""
        scores, ready = {}, []
        for point in points:
            self.trials_run += 1
            hyperparameters = point_hyperparameters(trial, point)
            for execution in range(self.config.executions_per_trial):
                run = Execution.open(self, hyperparameters, point, execution, budget_of(trial))
                if isinstance(run, Execution):
                    ready.append(run)
                else:
                    scores[(trial_id(point), execution)] = run
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
                groups.setdefault((structure_key(run.point, run.seed), run.first_epoch, run.num_epochs), []).append(run)
            for _, runs in sorted(groups.items(), key=lambda item: item[0][1:]):
                program = self._program(runs, data)
                for start in range(0, len(runs), program.capacity):
                    self._train_members(program, runs[start:start + program.capacity], data)
        else:
            for run in ready:
                self._train_alone(run, data)
        for run in ready:
            scores[(run.tid, run.execution)] = run.score
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
            for epoch in range(runs[0].first_epoch, runs[0].num_epochs):
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
                                   activations, device())
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


def device():
    """"gpu" where TensorFlow sees one, else "cpu": what sizes programs and cohorts."""
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
