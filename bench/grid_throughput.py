"""Grid-search throughput (issue 14): trials per hour of whole searches, against the raw train steps they run.

    python bench/grid_throughput.py [--grids quickstart,mnist] [--paths today] [--xla on,off] [--reps 3]
                                    [--epochs N] [--subset bp,dfa,...] [--executions N]
                                    [--mnist_examples 2000] [--no-profile]

Grids:
- ``quickstart``: hparams/quickstart.toml (mnist1d, its space and [search] settings: 6 rules × 3 lrs,
  256-256 tanh, 10 epochs, 2 executions);
- ``mnist``: 784-500-500 tanh nets, bp/dfa/drtp/cce × lr 1e-4/1e-3/1e-2, 5 epochs, 1 execution, Adam,
  batch 64, objective val_error_rate, on MNIST-shaped data from ``tfds.testing.mock_data`` (random
  28×28×1 uint8 images, 10 classes, ``--mnist_examples`` examples in train and in test; no network here,
  so not real MNIST: the math per example is the same, the number of examples is not).
``--epochs`` and ``--executions`` override every grid's own values; ``--subset`` keeps only those rules.

Each repetition runs every (grid, path, XLA) variant once, in an order rotated from one repetition to
the next (interleaved, so machine noise hits all alike), each search from scratch in a fresh temporary
directory through the public `bpfree.tuning.run_search`. A path is a function in ``PATHS``: ``today`` is
run_search as it is (one trial at a time, one model per execution); a later ``stacked`` path goes
beside it there. ``--xla off`` is today's path with ``use_xla=False`` (``--nouse_xla``). One untimed
warm-up search per grid first pays the process's one-time costs (TF init, first tfds load).

"Raw" is the same number of train steps and eval steps, on batches of the same shapes (the short last
batch included), run as ``fit(epochs=num_epochs, validation_data=...)`` with no callbacks on one already
compiled model per rule, on the search's own batches cached in memory: the math without the per-trial
fixed costs. Measured once per repetition per grid and XLA mode, interleaved with the searches; a
grid's raw time is the sum over its grid points of its rule's raw time × executions.

``--profile`` (on by default) then runs each grid once more (today, XLA on) with timers patched into
the tuner, the hypermodel and `fit` (callbacks before and after the search's own), and prints where an
execution's wall time goes, averaged over the search's executions. Approximate: the first train batch of
an execution includes iterator creation, tracing and XLA compilation and one step; the short last batch
is timed from the previous batch's end; eval's first batch includes the test step's compilation.

``--reps 0`` runs only the profile.

Recorded run (2 CPU cores shared with another job, whose load changed during the run: trust the
ratios within a repetition more than the absolute rates; the instrumented profile searches ran at
687/h and 630/h in one quiet stretch, 387/h for mnist in a busier one), 21 minutes:

    PYTHONPATH=src python bench/grid_throughput.py --grids quickstart,mnist --xla on,off --reps 3 \
        --epochs 5 --executions 1 --subset bp,dfa,drtp,cce --mnist_examples 2000

(quickstart shortened to the issue's small grid: 4 rules × 3 lrs, 5 epochs, 1 execution, on mnist1d)

| grid | path | trials | trials/h median | trials/h min | wall s median | raw s median (same XLA) | wall / raw | wall / raw XLA |
|---|---|---|---|---|---|---|---|---|
| quickstart | today | 12 | 584 | 466 | 74.0 | 13.1 | 5.7 | 5.7 |
| quickstart | today --nouse_xla | 12 | 1131 | 1057 | 38.2 | 17.9 | 2.1 | 2.9 |
| mnist | today | 12 | 376 | 343 | 115.0 | 18.4 | 6.2 | 6.2 |
| mnist | today --nouse_xla | 12 | 492 | 484 | 87.9 | 42.6 | 2.1 | 4.8 |

Per execution (profile, XLA on; quickstart 5.2 s, mnist 5.7 s): compiling the train step for the full
batch 1.6-1.7 s, again for the short last batch 0.6-0.7 s, the test step for both shapes 0.7-1.0 s:
3.0-3.4 s (55-60 %) of compilation, against 0.8 s of steady train steps. Then the training pipeline,
rebuilt per execution and re-loading its split (SearchData.train → datasets.pipeline → load: 0.7-1.1 s
per execution on mock MNIST, ~0 on the cached mnist1d), 0.1-0.6 s after fit returns (iterators freed),
0.1-0.3 s of epoch-end callbacks (checkpoint save most of it); model build, records, TensorBoard,
keras-tuner bookkeeping and the search's own setup are each ≤ 0.1 s.
"""

import argparse
import collections
import functools
import os
import statistics
import sys
import tempfile
import time
import tomllib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import keras  # noqa: E402
import keras_tuner  # noqa: E402

from bpfree import datasets  # noqa: E402
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search  # noqa: E402
from bpfree.tuning import search as search_module  # noqa: E402
from bpfree.tuning import tuner as tuner_module  # noqa: E402
from bpfree.tuning.hypermodel import BpfreeHyperModel  # noqa: E402

QUICKSTART = os.path.join(HERE, "..", "hparams", "quickstart.toml")
MNIST_SPACE = {"algorithm": ["bp", "dfa", "drtp", "cce"], "arch": ["500-500"], "activation": ["tanh"],
               "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-4, 1e-3, 1e-2], "dropout": [0.0]}
MNIST_SEARCH = {"dataset": "mnist", "problem_type": "classification", "objective": "val_error_rate",
                "batch_size": 64, "num_epochs": 5, "executions_per_trial": 1}


def today(directory, config, space):
    """The search before issue 14: `run_search` with ``engine=EngineOptions(fit=True)`` (one trial, one model, one `fit` at a time)."""
    return run_search(directory, config, space, log=lambda *a: None, engine=EngineOptions(fit=True))


def grouped(size):
    """The grouped search (`bpfree.tuning.group`), ``size`` executions a program."""
    return functools.partial(run_search, log=lambda *a: None, group_size=size)


PATHS = {"today": today, **{f"grouped{k}": grouped(k) for k in (1, 2, 3, 4, 6, 8, 12)}}
XLA = {"on": True, "off": False, "auto": "auto"}


def grid_settings(name, args):
    """(SearchConfig settings dict, space dict) of grid `name`, with the command line's overrides."""
    if name == "quickstart":
        with open(QUICKSTART, "rb") as f:
            preset = tomllib.load(f)
        search, space = dict(preset["search"]), dict(preset["space"])
    elif name == "mnist":
        search, space = dict(MNIST_SEARCH), {k: list(v) for k, v in MNIST_SPACE.items()}
    else:
        raise SystemExit(f"unknown grid {name!r} (valid: quickstart, mnist)")
    if args.epochs:
        search["num_epochs"] = args.epochs
    if args.executions:
        search["executions_per_trial"] = args.executions
    if args.subset:
        space["algorithm"] = [a for a in space["algorithm"] if a in args.subset.split(",")]
    return search, space


def make(search, space, use_xla):
    return SearchConfig.from_settings(search, {"use_xla": use_xla}), SearchSpace.create(space)


def timed_search(path, config, space):
    with tempfile.TemporaryDirectory(prefix="grid_throughput-") as directory:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = PATHS[path](directory, config, space)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if summary["accidents"]:
        raise SystemExit(f"accidents in the search: {summary['accidents'][:3]}")
    return {"wall": wall, "cpu": cpu, "trials": summary["ran"], "fit": summary["fit_seconds"],
            "executions": summary["ran"] * config.executions_per_trial}


RAW_MODELS = {}  # (grid, XLA) -> ({rule: compiled model}, train batches, eval batches): built once, timed every rep


def raw_seconds(grid, config, space):
    """Seconds of the grid's train + eval steps run back to back on compiled models (see the docstring)."""
    key = grid, config.jit_compile
    if key not in RAW_MODELS:
        data = search_module.SearchData(config)
        train = data.train(config.seed, 0).take(data.steps_per_epoch).cache()
        val = data.validation().cache()
        for ds in (train, val):
            for _ in ds:
                pass  # fill the caches: the batches the search trains and validates on, in memory
        meta = datasets.info(config.dataset)
        hypermodel = BpfreeHyperModel(space, config, meta.input_shape, meta.num_classes)
        models = {}
        for point in space.grid():
            if point["algorithm"] not in models:
                hp = keras_tuner.HyperParameters()
                hp.values = dict(point)
                model = hypermodel.build(hp, seed=config.seed)
                model.fit(train, validation_data=val, epochs=1, verbose=0)  # compiles train and test, both batch shapes
                models[point["algorithm"]] = model
        RAW_MODELS[key] = models, train, val
    models, train, val = RAW_MODELS[key]
    per_rule = {}
    for rule, model in models.items():
        start = time.perf_counter()
        model.fit(train, validation_data=val, epochs=config.num_epochs, verbose=0)
        per_rule[rule] = time.perf_counter() - start
    return sum(per_rule[p["algorithm"]] for p in space.grid()) * config.executions_per_trial


def median_min(values):
    return statistics.median(values), min(values)


def throughput(args, grids, variants):
    runs = collections.defaultdict(list)  # (grid, path, xla) -> [timed_search dicts]
    raw = collections.defaultdict(list)  # (grid, xla) -> [seconds]
    jobs = [("search", g, p, x) for g in grids for p, x in variants]
    jobs += [("raw", g, None, x) for g in grids for x in sorted({make(*grids[g], XLA[x])[0].jit_compile
                                                                 for _, x in variants}, reverse=True)]
    for g, (search, space) in grids.items():  # untimed warm-up: one point, one epoch
        one = {**space, "algorithm": space["algorithm"][:1], "lr": space["lr"][:1]}
        for path in sorted({p for p, _ in variants}):
            r = timed_search(path, *make({**search, "num_epochs": 1, "executions_per_trial": 1}, one, "auto"))
            print(f"  warm-up {g} {path}: {r['wall']:.1f} s (not counted)", flush=True)
    for rep in range(args.reps):
        shift = rep % len(jobs)
        for kind, g, path, xla in jobs[shift:] + jobs[:shift]:
            config, space = make(*grids[g], XLA[xla] if kind == "search" else xla)
            if kind == "search":
                r = timed_search(path, config, space)
                runs[g, path, xla].append(r)
                label = f"{path} (XLA {xla})"
                print(f"  rep {rep} {g} {label}: {r['trials']} trials in {r['wall']:.1f} s "
                      f"({3600 * r['trials'] / r['wall']:.0f}/h), fit {r['fit']:.1f} s, cpu {r['cpu']:.1f} s", flush=True)
            else:
                raw[g, xla].append(raw_seconds(g, config, space))
                print(f"  rep {rep} {g} raw (XLA {'on' if xla else 'off'}): {raw[g, xla][-1]:.1f} s", flush=True)
    return runs, raw


def print_throughput(grids, variants, runs, raw, args):
    print(f"\n## Trials per hour ({args.reps} repetitions, interleaved)\n")
    print("| grid | path | trials | executions | trials/h median | trials/h min | wall s median | CPU s median "
          "| in fit s median | raw s median (same XLA) | wall / raw | wall / raw XLA |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for g in grids:
        raw_xla = statistics.median(raw[g, True]) if raw[g, True] else float("nan")
        for path, xla in variants:
            rs = runs[g, path, xla]
            rates = [3600 * r["trials"] / r["wall"] for r in rs]
            wall = statistics.median(r["wall"] for r in rs)
            own = statistics.median(raw[g, make(*grids[g], XLA[xla])[0].jit_compile])
            med, low = median_min(rates)
            print(f"| {g} | {path} (XLA {xla}) | {rs[0]['trials']} | {rs[0]['executions']} "
                  f"| {med:.0f} | {low:.0f} | {wall:.1f} | {statistics.median(r['cpu'] for r in rs):.1f} "
                  f"| {statistics.median(r['fit'] for r in rs):.1f} | {own:.1f} | {wall / own:.1f} "
                  f"| {wall / raw_xla:.1f} |")


class Timers:
    """Named running sums of seconds (and counts)."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.counts = collections.defaultdict(int)

    def add(self, name, seconds):
        self.seconds[name] += seconds
        self.counts[name] += 1

    def wrap(self, name, function):
        @functools.wraps(function)
        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                self.add(name, time.perf_counter() - start)
        return timed


class FitClock(keras.callbacks.Callback):
    """Timestamps inside fit: `first` runs before the search's own callbacks, `last` after them."""

    def __init__(self, timers, role, shared):
        super().__init__()
        self.t, self.role, self.s = timers, role, shared

    def _now(self):
        return time.perf_counter()

    def on_train_begin(self, logs=None):
        if self.role == "first":
            self.t.add("fit: setup before the first epoch (adapter, iterator, callbacks' train begin)",
                       self._now() - self.s["fit_start"])

    def on_epoch_begin(self, epoch, logs=None):
        if self.role == "last":
            self.s.update(epoch=epoch, mark=self._now(), batch=-1)

    def on_train_batch_end(self, batch, logs=None):
        if self.role != "last":
            return
        now = self._now()
        first_epoch = self.s["epoch"] == self.s["initial_epoch"]
        if batch == 0:
            name = ("train batch 0 of epoch 0 (iterator, trace, XLA compile, step)" if first_epoch
                    else "train batch 0 of later epochs (step, iterator)")
        elif batch == self.s["steps"] - 1 and self.s["short"]:
            name = ("short last train batch of epoch 0 (retrace, compile, step)" if first_epoch
                    else "short last train batch of later epochs")
        else:
            name = "full train steps after batch 0"
        self.t.add(name, now - self.s["mark"])
        self.s["mark"] = now

    def on_test_begin(self, logs=None):
        if self.role == "first":
            now = self._now()
            self.t.add("after the last train batch until eval begins (eval iterator, hooks)", now - self.s["mark"])
            self.s["test_mark"] = now

    def on_test_batch_end(self, batch, logs=None):
        if self.role != "last":
            return
        now = self._now()
        first_epoch = self.s["epoch"] == self.s["initial_epoch"]
        if batch == 0:
            name = ("eval batch 0 of epoch 0 (iterator, trace, XLA compile, step)" if first_epoch
                    else "eval batch 0 of later epochs")
        elif batch == self.s["val_steps"] - 1 and self.s["val_short"]:
            name = ("short last eval batch of epoch 0 (retrace, compile, step)" if first_epoch
                    else "short last eval batch of later epochs")
        else:
            name = "full eval steps after batch 0"
        self.t.add(name, now - self.s["test_mark"])
        self.s["test_mark"] = now

    def on_test_end(self, logs=None):
        if self.role == "last":
            self.s["test_end"] = self._now()

    def on_epoch_end(self, epoch, logs=None):
        now = self._now()
        if self.role == "first":
            which = "epoch 0" if self.s["epoch"] == self.s["initial_epoch"] else "later epochs"
            self.t.add(f"after the last eval batch until epoch end, {which} (eval teardown, logs)",
                       now - self.s["test_end"])
            self.s["cb_start"] = now
        else:
            self.t.add("epoch-end callbacks (record + checkpoint, TerminateOnNaN, TensorBoard)",
                       now - self.s["cb_start"])
            self.s["epoch_end"] = now

    def on_train_end(self, logs=None):
        now = self._now()
        if self.role == "first":
            self.t.add("after the last epoch until train end (finalize, drop the eval iterator)",
                       now - self.s["epoch_end"])
            self.s["train_end"] = now
        else:
            self.t.add("train-end callbacks (TensorBoard closes its writers, ...)", now - self.s["train_end"])
            self.s["train_end"] = now


def profile(args, grids):
    """One instrumented search per grid (today, XLA on): where an execution's time goes."""
    for g, (search, space_dict) in grids.items():
        config, space = make(search, space_dict, True)
        timers = Timers()
        shared = {}
        patches = []

        def patch(owner, attr, name):
            original = getattr(owner, attr)
            patches.append((owner, attr, original))
            setattr(owner, attr, timers.wrap(name, original))

        data = search_module.SearchData(config)
        original_build = BpfreeHyperModel.build

        def build(self, hp, seed=None):
            start = time.perf_counter()
            model = original_build(self, hp, seed=seed)
            timers.add("build + compile() the model", time.perf_counter() - start)
            fit = model.fit

            def timed_fit(*a, callbacks=(), **k):
                shared.update(fit_start=time.perf_counter(), initial_epoch=k.get("initial_epoch", 0),
                              steps=k["steps_per_epoch"], short=short_train, val_steps=val_steps, val_short=val_short)
                cbs = [FitClock(timers, "first", shared), *callbacks, FitClock(timers, "last", shared)]
                start = time.perf_counter()
                try:
                    return fit(*a, callbacks=cbs, **k)
                finally:
                    end = time.perf_counter()
                    timers.add("fit (all)", end - start)
                    timers.add("after train end until fit returns (history, iterators freed)", end - shared["train_end"])
            model.fit = timed_fit
            return model

        # the short-batch flags: from the search's own batches (their sizes)
        train_sizes = [int(x.shape[0]) for x, _ in data.train(config.seed, 0).take(data.steps_per_epoch)]
        val_sizes = [int(x.shape[0]) for x, _ in data.validation()]
        short_train = train_sizes[-1] != train_sizes[0]
        val_steps, val_short = len(val_sizes), val_sizes[-1] != val_sizes[0]
        BpfreeHyperModel.build = build
        patches.append((BpfreeHyperModel, "build", original_build))
        patch(tuner_module.GridTuner, "_run_group", "execution (all)")  # today: one trial's executions a call
        patch(tuner_module.GridTuner, "run_trial", "trial (all)")
        patch(search_module.SearchData, "train", "training pipeline for the execution (SearchData.train: loads the split)")
        patch(search_module, "SearchData", "search: load data (SearchData)")
        patch(tuner_module.records.ExecutionRecord, "start", "record: start")
        patch(tuner_module.records.ExecutionRecord, "finish", "after fit: record finish (write)")
        patch(tuner_module.checkpoints, "save", "epoch end: checkpoint save")
        patch(tuner_module.records.ExecutionRecord, "save_history", "epoch end: record write")
        patch(tuner_module.checkpoints, "remove", "after fit: checkpoint remove")
        patch(tuner_module.tensorboard_hparams, "write_run", "after fit: TensorBoard hparams run")
        patch(tuner_module.keras.backend, "clear_session", "after fit: clear_session")
        patch(tuner_module.GridTuner, "on_trial_end", "keras-tuner: on_trial_end (oracle update, trial save)")
        try:
            r = timed_search("today", config, space)
        finally:
            for owner, attr, original in reversed(patches):
                setattr(owner, attr, original)
        n = r["executions"]
        steps = sum(c for k, c in timers.counts.items() if k.startswith(("train batch", "full train", "short last train")))
        print(f"\n## Where an execution's time goes: {g} ({r['trials']} trials, {n} executions, "
              f"{config.num_epochs} epochs, train batches {train_sizes[0]}" + (f" + {train_sizes[-1]}" if short_train else "")
              + f" × {len(train_sizes)}, eval batches {val_sizes[0]}" + (f" + {val_sizes[-1]}" if val_short else "")
              + f" × {val_steps}; {steps // max(n, 1)} train batches timed per execution)\n")
        print(f"search wall {r['wall']:.1f} s = {3600 * r['trials'] / r['wall']:.0f} trials/h (instrumented)\n")
        print("| part | s per execution | % of execution | calls per execution |")
        print("|---|---|---|---|")
        per_exec = timers.seconds["execution (all)"] / n
        order = ["execution (all)", "build + compile() the model", "record: start", "fit (all)"]
        order += [k for k in timers.seconds if k not in order and k not in ("trial (all)",)]
        for k in order:
            if k.startswith("search:") or k.startswith("keras-tuner"):
                continue
            s = timers.seconds[k] / n
            print(f"| {k} | {s:.3f} | {100 * s / per_exec:.1f}% | {timers.counts[k] / n:.1f} |")
        inside = sum(timers.seconds[k] for k in timers.seconds if k.startswith(
            ("fit: setup", "train batch", "full train", "short last train", "eval batch", "full eval", "short last eval",
             "after the last", "epoch-end", "train-end", "after train end")))
        rest = timers.seconds["fit (all)"] - inside
        print(f"| fit, not covered by the parts above (train-begin/end hooks, history, loop) | {rest / n:.3f} | "
              f"{100 * rest / n / per_exec:.1f}% | |")
        outside = r["wall"] - timers.seconds["execution (all)"]
        print(f"\nper search, outside executions: {outside:.1f} s of {r['wall']:.1f} s "
              f"(load data {timers.seconds['search: load data (SearchData)']:.1f} s, keras-tuner on_trial_end "
              f"{timers.seconds['keras-tuner: on_trial_end (oracle update, trial save)']:.1f} s, the rest: lock, "
              f"config, oracle, tuner setup, trial creation)")
        steady = (timers.seconds["full train steps after batch 0"] / max(timers.counts["full train steps after batch 0"], 1))
        print(f"steady train step: {1000 * steady:.1f} ms")


def profile_grouped(args, grids, size):
    """One instrumented grouped search per grid (``group_size=size``, XLA auto): where its time goes."""
    from bpfree.tuning import group as group_module

    for g, (search, space_dict) in grids.items():
        config, space = make(search, space_dict, "auto")
        timers = Timers()
        patches = []
        seen = set()

        def patch(owner, attr, name, first_name=None):
            original = getattr(owner, attr)
            patches.append((owner, attr, original))

            @functools.wraps(original)
            def timed(self, *a, **k):
                start = time.perf_counter()
                try:
                    return original(self, *a, **k)
                finally:
                    first = first_name and (id(self), attr) not in seen
                    seen.add((id(self), attr))
                    timers.add(first_name if first else name, time.perf_counter() - start)
            setattr(owner, attr, timed)

        def patch_function(owner, attr, name):
            original = getattr(owner, attr)
            patches.append((owner, attr, original))
            setattr(owner, attr, timers.wrap(name, original))

        patch(tuner_module.GridTuner, "_run_group", "all (trials' executions, grouped)")
        patch(tuner_module.GridTuner, "_prepare", "prepare: build + compile its model, open the record")
        patch(tuner_module.GridTuner, "_program", "program: look up")
        patch(group_module.GroupProgram, "__init__", "program: make (first group of a structure)")
        patch(group_module.GroupProgram, "load", "program: copy a model's state into a slot")
        patch(group_module.GroupProgram, "train_epoch", "train epoch, later epochs and groups",
              "train epoch, a program's first (traces the step)")
        patch(group_module.GroupProgram, "evaluate", "validation, later epochs and groups",
              "validation, a program's first (traces the test step)")
        patch(tuner_module.RecordCallback, "on_epoch_end", "epoch end: checkpoint + record write")
        patch(keras.callbacks.TensorBoard, "on_epoch_end", "epoch end: TensorBoard scalars")
        patch(keras.callbacks.TensorBoard, "on_train_begin", "TensorBoard: open writers")
        patch(keras.callbacks.TensorBoard, "on_train_end", "TensorBoard: close writers")
        patch(tuner_module.GridTuner, "_conclude", "after training: record finish, checkpoint remove, hparams run")
        patch(tuner_module.GridTuner, "on_trial_end", "keras-tuner: on_trial_end (oracle update, trial save)")
        patch_function(search_module, "SearchData", "search: load data (SearchData)")
        try:
            r = timed_search(f"grouped{size}", config, space)
        finally:
            for owner, attr, original in reversed(patches):
                setattr(owner, attr, original)
        n = r["executions"]
        total = timers.seconds["all (trials' executions, grouped)"]
        print(f"\n## Where a grouped search's time goes: {g}, group_size {size} ({r['trials']} trials, {n} executions, "
              f"{config.num_epochs} epochs, XLA {'on' if config.jit_compile else 'off'})\n")
        print(f"search wall {r['wall']:.1f} s = {3600 * r['trials'] / r['wall']:.0f} trials/h (instrumented)\n")
        print("| part | s per execution | % of the executions' time | calls |")
        print("|---|---|---|---|")
        for name, seconds in sorted(timers.seconds.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {seconds / n:.3f} | {100 * seconds / total:.1f}% | {timers.counts[name]} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", default="quickstart,mnist")
    parser.add_argument("--variants", default="today:on,today:off,grouped1:auto,grouped4:auto",
                        help=f"comma-separated PATH:XLA, PATH of {', '.join(PATHS)}, XLA of on, off, auto")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=0, help="override every grid's num_epochs")
    parser.add_argument("--executions", type=int, default=0, help="override every grid's executions_per_trial")
    parser.add_argument("--subset", default="", help="keep only these rules (comma-separated)")
    parser.add_argument("--mnist_examples", type=int, default=2000, help="mock MNIST examples per split")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile_group_size", type=int, default=4, help="the grouped search profiled (0: none)")
    parser.add_argument("--no-profile_today", dest="profile_today", action="store_false",
                        help="skip the profile of the one-at-a-time search")
    args = parser.parse_args()
    variants = [tuple(v.split(":")) for v in args.variants.split(",")]
    for v in variants:
        if len(v) != 2 or v[0] not in PATHS or v[1] not in XLA:
            parser.error(f"invalid variant {':'.join(v)!r} (valid: PATH:XLA, PATH of {', '.join(PATHS)}, "
                         f"XLA of {', '.join(XLA)})")
    grids = {g: grid_settings(g, args) for g in args.grids.split(",")}
    if "mnist" in grids:
        import tensorflow_datasets as tfds

        os.environ["BPFREE_TFDS_DOWNLOAD"] = "0"
        mock = tfds.testing.mock_data(num_examples=args.mnist_examples)
        mock.__enter__()  # for the whole run
    print(f"command: {' '.join(sys.argv)}")
    for g, (search, space) in grids.items():
        config, sp = make(search, space, True)
        data = "mock MNIST (tfds.testing.mock_data, random images), " \
               f"{args.mnist_examples} train / {args.mnist_examples} test" if g == "mnist" else config.dataset
        print(f"grid {g}: {sp.size()} points ({', '.join(space['algorithm'])} × lr {space['lr']}, {space['arch']}), "
              f"{config.num_epochs} epochs, {config.executions_per_trial} executions, batch {config.batch_size}; "
              f"data: {data}")
    start = time.perf_counter()
    if args.reps:
        runs, raw = throughput(args, grids, variants)
        print_throughput(grids, variants, runs, raw, args)
    if args.profile:
        if args.profile_today:
            profile(args, grids)
        if args.profile_group_size:
            profile_grouped(args, grids, args.profile_group_size)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
