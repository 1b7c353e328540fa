"""The TensorBoard HParams dashboard: one config for the experiment, one hparams summary per run."""

import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp_api

METRICS = ("loss", "error_rate")


def write_config(tensorboard_dir, space):
    """Declares every hparam and the metrics to compare (train and validation groups)."""
    hparams = []
    for name, values in space.values:
        hparams.append(hp_api.HParam(name, hp_api.Discrete(list(values))))
    metrics = [hp_api.Metric(f"epoch_{m}", group=g, display_name=f"{g} {m}")
               for m in METRICS for g in ("train", "validation")]
    os.makedirs(tensorboard_dir, exist_ok=True)
    with tf.summary.create_file_writer(tensorboard_dir).as_default():
        hp_api.hparams_config(hparams=hparams, metrics=metrics)


def write_run(run_dir, point, execution, seed, history):
    """The run's hparams (so the dashboard lists it with its final metrics)."""
    values = {k: v for k, v in point.items() if isinstance(v, (bool, int, float, str))}
    with tf.summary.create_file_writer(run_dir).as_default():
        hp_api.hparams(values, trial_id=os.path.join(os.path.basename(os.path.dirname(run_dir)), f"execution_{execution}"))
        tf.summary.scalar("seed", seed, step=0)
