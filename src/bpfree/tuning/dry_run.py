"""`--dry_run`: what a search would do — its size, points and settings, what the experiment directory
already holds, and an estimated wall time — with nothing trained and nothing written to it.

Everything the search would refuse is refused here too (the same validation, exit 2); the estimate comes
from a short run of the same search in a temporary directory (`bpfree.tuning.estimate`).
"""

import contextlib
import functools
import os
import re
import shutil
import signal
import sys
import tempfile

from bpfree import datasets
from bpfree.tuning import estimate, plan, validation
from bpfree.tuning.oracle import finished_trials
from bpfree.tuning.searches import random_order
from bpfree.tuning.space import trial_id


def dry_run(experiment_dir, config, space, engine, *, preset=None, reset_training=False, workers=0, out=None):
    """Prints the plan of the search (`config`, `space`) in `experiment_dir`, then its estimate; raises
    ValueError where the search itself would refuse to start. `out`: where lines go (print, flushed)."""
    out = out or functools.partial(print, flush=True)
    from bpfree.tuning.search import check_config, project_dir

    points = space.grid()
    validation.validate_points(points, config)
    if config.search != "grid":  # random: its sample; bayesian: as many points, its first ones (the rest unknown)
        points = random_order(points, config.seed)[:config.max_trials]
    directory = project_dir(experiment_dir, config, space)
    finished, done, grown = None, set(), False
    if os.path.isdir(directory) and not reset_training:
        grown = check_config(directory, config, space) == "grown"  # refuses what the search would refuse
        done = finished_trials(directory, config.executions_per_trial, config.num_epochs)
        finished = sum(trial_id(p) in done for p in points)
    out(f"dry run: nothing is trained and nothing is written to {experiment_dir}")
    if preset:
        out(f"preset: {preset}")
    out(f"project: {directory}")
    out(f"data: {config.dataset} from {datasets.source(config.dataset)}")  # tfds, or IDX files offline
    for line in plan.describe(space, config, engine, finished, points=points):
        out(line)
    if grown:
        out("the search grows the experiment (more seeds, epochs or grid values): only what is new runs, "
            "finished executions resuming from their final state (the estimate below counts those points in full)")
    if reset_training and os.path.isdir(directory):
        out("--reset_training: its records would be deleted and every point run again")
    size = plan.GridSize.of(space, config)
    if size.execution_epochs > plan.ASK_ABOVE:
        out(f"above {plan.ASK_ABOVE:,} execution-epochs: the search runs only with --yes")
    if workers:
        out(f"--workers {workers}: the points are shared among {workers} worker processes (the estimate is for one)")
    remaining = [p for p in points if trial_id(p) not in done] if done else points
    if not remaining:
        out("estimated wall time: none, every point is finished")
        return
    out(f"timing a short run of the same search in a temporary directory ({len(remaining):,} points to estimate) …")
    with _temporary_parent():
        lines = estimate.estimate(config, space, remaining, engine).lines(config)
    for line in lines:
        out(line)


TEMP_PREFIX = "bpfree-dry-run-pid"  # <tmp>/bpfree-dry-run-pid<pid>-<random>: the estimate's run, per process


@contextlib.contextmanager
def _temporary_parent():
    """The estimate's temporary files under a folder named by this process's id, removed at the end, on
    SIGTERM as on Ctrl-C; the folders that killed dry runs (SIGKILL) left behind, of processes that no
    longer exist, are removed first."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        match = re.fullmatch(re.escape(TEMP_PREFIX) + r"(\d+)-\w+", name)
        path = os.path.join(root, name)
        if match and not _alive(int(match.group(1))) and os.path.isdir(path) and not os.path.islink(path) \
                and os.stat(path).st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
    parent = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
    before, tempfile.tempdir = tempfile.tempdir, parent
    handler = None
    try:
        handler = signal.signal(signal.SIGTERM, lambda *a: sys.exit(128 + signal.SIGTERM))
    except ValueError:  # not the main thread: SIGTERM is left as it is
        pass
    try:
        yield parent
    finally:
        tempfile.tempdir = before
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
        shutil.rmtree(parent, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
