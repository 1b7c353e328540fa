"""One grid search in an experiment directory: lock, config, data, oracle, tuner, records."""

import json
import os
import shutil
import time

from bpfree import datasets, records, rules
from bpfree.tuning import distributed, tensorboard_hparams
from bpfree.tuning.hypermodel import BpfreeHyperModel
from bpfree.tuning.lock import ExperimentLock
from bpfree.tuning.oracle import GridOracle
from bpfree.tuning.space import trial_id
from bpfree.tuning.tuner import FINISHED, GridTuner
from bpfree.tuning.validation import validate_points

CONFIG_FILE = "config.json"


class ExperimentMismatch(ValueError):
    pass


def project_dir(experiment_dir, config, space):
    return os.path.join(experiment_dir, space.project_name(config.dataset, config.problem_type, config.objective))


def run_search(experiment_dir, config, space, *, reset_training=False, log=print):
    """Runs (or resumes) the grid; returns a summary dict. Raises ValueError subclasses on bad input.

    Under keras-tuner's distributed environment variables (see `bpfree.tuning.distributed`) the chief
    only serves the grid oracle and the workers only run trials; otherwise one process does both.
    """
    directory = project_dir(experiment_dir, config, space)
    _check_writable(experiment_dir)
    points = space.grid()
    validate_points(points, config, datasets.info(config.dataset))
    role = distributed.role()
    if role == "worker":
        return _run(directory, config, space, points, finished_trials(directory, config.executions_per_trial),
                    role, log)
    with ExperimentLock(directory):
        if reset_training:
            for sub in (records.RECORDS_DIRNAME, "tensorboard", "keras_tuner", CONFIG_FILE):
                path = os.path.join(directory, sub)
                shutil.rmtree(path) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)
        _write_or_check_config(directory, config, space)
        finished = finished_trials(directory, config.executions_per_trial)
        log(f"{directory}: {len(points)} grid points, {len(finished & {trial_id(p) for p in points})} already "
            f"finished, {len(points) - len(finished & {trial_id(p) for p in points})} to run")
        tensorboard_hparams.write_config(os.path.join(directory, "tensorboard"), space)
        return _run(directory, config, space, points, finished, role, log)


def _run(directory, config, space, points, finished, role, log):
    meta = datasets.info(config.dataset)
    output_dim = meta.num_classes if config.problem_type == "classification" else meta.features
    oracle = GridOracle(points, finished, config.objective)
    hypermodel = BpfreeHyperModel(space, config, meta.features, output_dim)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "local")
    tuner = GridTuner(oracle, hypermodel, directory, config, directory=os.path.join(directory, "keras_tuner"),
                      project_name=tuner_id, overwrite=True)
    start = time.perf_counter()
    if role == "chief":
        distributed.serve(tuner.oracle)
        return {"project_dir": directory, "grid_points": len(points), "ran": len(oracle.handed_out),
                "seconds": time.perf_counter() - start, "fit_seconds": 0.0}
    common = dict(batch_size=config.batch_size, problem_type=config.problem_type, scaler=config.scaler,
                  validation_frac=config.validation_frac)
    train = datasets.pipeline(config.dataset, "train", training=True, examples_frac=config.examples_frac,
                              seed=config.seed, **common)
    validation = datasets.pipeline(config.dataset, config.validation_split, training=False, **common)
    sample = next(iter(validation))[0][:256] if config.histogram_freq else None
    start = time.perf_counter()
    tuner.search(train, validation, histogram_sample=sample, log=log, verbose=0)
    return {"project_dir": directory, "grid_points": len(points), "ran": tuner.trials_run,
            "seconds": time.perf_counter() - start, "fit_seconds": tuner.fit_seconds}


def finished_trials(directory, executions_per_trial):
    """Trial ids whose executions 0..k−1 all have a final status."""
    status = {}
    for path in records.iter_record_paths(directory):
        try:
            data = records.read(path)
        except records.RecordError:
            continue  # a corrupt record: its execution runs again
        if data["status"] in FINISHED and data["execution"] < executions_per_trial:
            status.setdefault(data["trial_id"], set()).add(data["execution"])
    return {t for t, done in status.items() if len(done) == executions_per_trial}


def _write_or_check_config(directory, config, space):
    payload = {"search": config.to_json(), "space": {k: list(v) for k, v in space.values + space.extras},
               "fixed": sorted(space.fixed)}
    path = os.path.join(directory, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
        if existing != json.loads(json.dumps(payload)):
            changed = sorted(k for k in set(existing["search"]) | set(payload["search"])
                             if existing["search"].get(k) != payload["search"].get(k))
            if existing["space"] != payload["space"]:
                changed.append("space")
            raise ExperimentMismatch(
                f"{directory} was started with other settings ({', '.join(changed)} differ); "
                "re-run with the same flags, pass --reset_training to start over, or use another EXPERIMENT_DIR."
            )
        return
    records.write_json_atomic(path, payload)


def _check_writable(experiment_dir):
    try:
        os.makedirs(experiment_dir, exist_ok=True)
    except OSError as e:
        raise ValueError(f"Cannot create experiment dir {experiment_dir!r}: {e.strerror}.") from None
    if not os.access(experiment_dir, os.W_OK | os.X_OK):
        raise ValueError(f"Experiment dir {experiment_dir!r} is not writable.")
