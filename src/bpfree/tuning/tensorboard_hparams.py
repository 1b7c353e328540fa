"""The TensorBoard HParams dashboard: one config for the experiment, one hparams summary per run.

A search's runs live at ``EXPERIMENT_DIR/<project>/tensorboard/<trial id>/execution_<k>`` (scalars in its
``train`` and ``validation`` sub-runs). The dashboard lists one session group per execution, named by
`session_group_name`: the trial id first (it leads with the rule and shows the hparams that set the
point apart), then the experiment and project it belongs to, so that `tensorboard --logdir` over
several searches never merges two searches' executions of one grid point into one group.
"""

import logging
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp_api

from bpfree import rules
from bpfree.tuning.point_model import point_model

# The compiled metrics a search logs per epoch, train and validation (`BpfreeHyperModel.build`).
METRICS = {"classification": ("loss", "error_rate"), "reconstruction": ("loss", "unexplained_variance")}


def write_config(tensorboard_dir, space, config):
    """Declares every hparam and the metrics to compare: the loss and the error rate, or for reconstruction
    the unexplained variance (train and validation groups), and, when the search has trackers, every
    tracker metric its models log (train group: trackers are training-only; `tracker_metric_names`)."""
    hparams = []
    for name, values in space.values:
        hparams.append(hp_api.HParam(name, hp_api.Discrete(list(values))))
    metrics = [hp_api.Metric(f"epoch_{m}", group=g, display_name=f"{g} {m}")
               for m in METRICS[config.problem_type] for g in ("train", "validation")]
    metrics += [hp_api.Metric(f"epoch_{m}", group="train", display_name=f"train {m}")
                for m in tracker_metric_names(space.grid(), config)]
    os.makedirs(tensorboard_dir, exist_ok=True)
    with tf.summary.create_file_writer(tensorboard_dir).as_default():
        hp_api.hparams_config(hparams=hparams, metrics=metrics)


def tracker_metric_names(points, config):
    """The metric names the search's trackers log (``bp_cosine_1``, ``weight_alignment_2``, ...), in order of
    first appearance: those of a model built for each rule, arch and rule hparams of `points` (which
    trackers apply, and to which layers, is the model's: `bpfree.trackers.metric_names`). None without
    trackers; a point no model can be built for adds none (its execution fails the same way)."""
    if not config.trackers:
        return []
    meta = config.dataset_info()
    output_dim = meta.num_classes if config.problem_type == "classification" else meta.features
    names, seen = {}, set()
    logger, silent = logging.getLogger("bpfree"), _Silent()
    logger.addFilter(silent)  # "tracker ... does not apply": each execution's model says it again
    try:
        for p in points:
            extras = {k: p[k] for k in rules.rule_class(p["algorithm"]).hparams() if k in p}
            key = (p["algorithm"], p["arch"], tuple(sorted(extras.items())))
            if key in seen:
                continue
            seen.add(key)
            try:
                model = point_model(p, config, meta.input_shape, output_dim, config.seed)
            except ValueError:
                continue
            names.update(dict.fromkeys(m.name for m in model.tracker_metrics))
    finally:
        logger.removeFilter(silent)
    return list(names)


class _Silent(logging.Filter):
    def filter(self, record):
        return False


def session_group_name(run_dir, execution):
    """"dfa-500-500-tanh-bwortho-lr0.001-3f9c2a/execution_0 · quickstart/mnist1d-classification-val_error_rate":
    the run's trial id and execution, then its experiment directory and project (the two directories above
    ``tensorboard``), from `run_dir` = ``EXPERIMENT_DIR/<project>/tensorboard/<trial id>/execution_<k>``."""
    trial_dir = os.path.dirname(os.path.normpath(run_dir))
    project_dir = os.path.dirname(os.path.dirname(trial_dir))
    experiment = os.path.basename(os.path.dirname(os.path.abspath(project_dir)))
    return f"{os.path.basename(trial_dir)}/execution_{execution} · {experiment}/{os.path.basename(project_dir)}"


def write_run(run_dir, point, execution, seed, history):
    """The run's hparams (so the dashboard lists it with its final metrics), in the session group
    `session_group_name`."""
    values = {k: v for k, v in point.items() if isinstance(v, (bool, int, float, str))}
    with tf.summary.create_file_writer(run_dir).as_default():
        hp_api.hparams(values, trial_id=session_group_name(run_dir, execution))
        tf.summary.scalar("seed", seed, step=0)
