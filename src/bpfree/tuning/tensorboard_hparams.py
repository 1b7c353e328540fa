"""The TensorBoard HParams dashboard: one config for the experiment, one hparams summary per run.

A search's runs live at ``EXPERIMENT_DIR/<project>/tensorboard/<trial id>/execution_<k>``, one run per
execution (`bpfree.tuning.tensorboard_runs`). The dashboard lists one session group per execution, named by
`session_group_name`: the trial id first (it leads with the rule and shows the hparams that set the
point apart), then the experiment and project it belongs to, so that `tensorboard --logdir` over
several searches never merges two searches' executions of one grid point into one group.

The experiment's config (`write_config`) declares every hparam of the grid with every value it takes, the
searched ones (more than one value) marked as differing, which the dashboard shows first (it shows the
first five columns until others are ticked), and the metrics. TensorBoard keeps the first config it reads
of a run, so each config is its own run, ``_hparams_config/<digest of its content>``, and a search that
grows (a new value) replaces the previous one: a TensorBoard started or reloaded after it filters by the
new values too.
"""

import hashlib
import logging
import os
import shutil
import time

from tensorboard.plugins.hparams import api as hp_api
from tensorboard.plugins.hparams import metadata as hp_metadata
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary

from bpfree import rules
from bpfree.tuning import tensorboard_runs
from bpfree.tuning.point_model import point_model

# The compiled metrics a search logs per epoch, train and validation (`BpfreeHyperModel.build`).
METRICS = {"classification": ("loss", "error_rate"), "reconstruction": ("loss", "unexplained_variance")}
CONFIG_RUN = "_hparams_config"  # the run (a directory under the search's tensorboard dir) of the config


def write_config(tensorboard_dir, space, config):
    """Declares every hparam (`hparams`) and the metrics to compare, as tags of the execution's run
    (`bpfree.tuning.tensorboard_runs.tag`): the loss and the error rate, or for reconstruction the
    unexplained variance (train and validation; test too with ``test_each_epoch``), and, when the search
    has trackers, every tracker metric its models log (train: trackers are training-only;
    `tracker_metric_names`). Writes it as the run ``_hparams_config/<digest>`` unless that run is there,
    removing any other config (an earlier search's, or the old layout's at the top of `tensorboard_dir`).
    First merges runs of the old train/validation layout (`tensorboard_runs.merge_old_layout`)."""
    os.makedirs(tensorboard_dir, exist_ok=True)
    tensorboard_runs.merge_old_layout(tensorboard_dir)
    splits = ("train", "validation") + (("test",) if config.test_each_epoch else ())
    tags = [f"{m}/{s}" for m in METRICS[config.problem_type] for s in splits]
    tags += [f"{m}/train" for m in tracker_metric_names(space.grid(), config)]
    metrics = [hp_api.Metric(t, display_name=t) for t in tags]
    summary = hp_api.hparams_config_pb(hparams=hparams(space.grid()), metrics=metrics, time_created_secs=0)
    value = summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = len(info.domain_discrete.values) > 1 if info.HasField("domain_discrete") else True
    value.metadata.CopyFrom(hp_metadata.create_summary_metadata(data))
    digest = hashlib.sha1(summary.SerializeToString(deterministic=True)).hexdigest()[:12]
    config_root = os.path.join(tensorboard_dir, CONFIG_RUN)
    for name in os.listdir(tensorboard_dir):  # the old layout's config, at the top
        if "tfevents" in name and os.path.isfile(os.path.join(tensorboard_dir, name)):
            os.remove(os.path.join(tensorboard_dir, name))
    if os.path.isdir(config_root):
        for name in os.listdir(config_root):
            if name != digest:
                shutil.rmtree(os.path.join(config_root, name), ignore_errors=True)
    run = os.path.join(config_root, digest)
    if os.path.isdir(run) and any("tfevents" in n for n in os.listdir(run)):
        return
    data.experiment.time_created_secs = time.time()
    value.metadata.CopyFrom(hp_metadata.create_summary_metadata(data))
    tensorboard_runs.write_events(tensorboard_runs.event_file_name(run), [tensorboard_runs.summary_event(summary)])


def hparams(points):
    """An `hp_api.HParam` for every hparam of the grid `points` (a rule's own hparams by their bare names,
    as the runs log them), in order of first appearance, its domain the values it takes: numbers as
    floats where ints and floats mix; no domain where kinds mix otherwise (the dashboard then filters it
    by a regular expression)."""
    values = {}
    for point in points:
        for name, value in point.items():
            if isinstance(value, (bool, int, float, str)):
                values.setdefault(name, []).append(value)
    out = []
    for name, vals in values.items():
        kinds = {type(v) for v in vals}
        if kinds == {int, float}:
            vals, kinds = [float(v) for v in vals], {float}
        domain = hp_api.Discrete(sorted(set(vals))) if len(kinds) == 1 else None
        out.append(hp_api.HParam(name, domain))
    return out


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


RUN_SUFFIX = ".bpfree-hparams"  # an execution's hparams event file (`write_run`): one per run, the latest


def write_run(run_dir, point, execution, seed, history):
    """The run's hparams (so the dashboard lists it with its final metrics), in the session group
    `session_group_name`, and its seed (a scalar at step 0), in one event file written atomically."""
    values = {k: v for k, v in point.items() if isinstance(v, (bool, int, float, str))}
    summaries = [hp_api.hparams_pb(values, trial_id=session_group_name(run_dir, execution)),
                 scalar_summary.scalar_pb("seed", seed)]
    path = tensorboard_runs.event_file_name(run_dir, RUN_SUFFIX)
    tensorboard_runs.write_events(path, [tensorboard_runs.summary_event(s) for s in summaries])
    # An execution concludes again when it is extended (or resumed after a kill at its end): the earlier
    # file goes, so the run lists its session and seed once. A kill before this leaves two until the next.
    for name in os.listdir(run_dir):
        if name.endswith(RUN_SUFFIX) and os.path.join(run_dir, name) != path:
            os.remove(os.path.join(run_dir, name))
