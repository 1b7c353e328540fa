"""What TensorBoard shows of a search: its runs and tags as TensorBoard's readers find them, and the HParams
dashboard read through its own HTTP API."""

import json
import os
import shutil

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import data_provider, plugin_event_accumulator, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api as hp_api
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util
from werkzeug.test import Client

from bpfree import records, results
from bpfree.tuning import SearchConfig, SearchSpace, run_search, tensorboard_hparams, tensorboard_runs, trial_id

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}


def hparams_dashboard(logdir, multiplexer=None):
    """(experiment, session groups) as `tensorboard --logdir logdir` serves them to the HParams dashboard
    (after a reload of `multiplexer`: a TensorBoard that has been running; by default a fresh one)."""
    multiplexer = multiplexer or plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    context = base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                    data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)))
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route, body):
        response = Client(apps[route]).post(route, data=json.dumps(body))
        assert response.status_code == 200, response.get_data(as_text=True)
        return json.loads(response.get_data(as_text=True))

    experiment = post("/experiment", {})
    groups = post("/session_groups", {"startIndex": 0, "sliceSize": 1000, "allowedStatuses": [
        "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
    return experiment, groups.get("sessionGroups", [])


def test_two_searches_runs_of_one_point_are_two_rule_first_groups(tmp_path):
    # One grid point run by two searches (the notebook's lr grid and its re-run of the best lr): the
    # dashboard must not merge their executions into one group (averaging two searches' metrics).
    point = {"algorithm": "bp", "arch": "16", "activation": "tanh", "batchnorm": False, "bw_init": "ortho",
             "lr": 0.01, "dropout": 0.0}
    tid = trial_id(point)
    projects = ["lr_grid/digits-classification-val_error_rate", "rerun/digits-classification-val_error_rate-bp-lr0.01"]
    for project in projects:
        tensorboard_hparams.write_run(str(tmp_path / project / "tensorboard" / tid / "execution_0"), point, 0, 0, {})
    _, groups = hparams_dashboard(tmp_path)
    assert len(groups) == 2 and all(len(g["sessions"]) == 1 for g in groups), groups
    names = sorted(g["name"] for g in groups)
    assert all(name.startswith(f"{tid}/execution_0") for name in names), names  # the rule first
    assert [name.endswith(project) for name, project in zip(names, projects)] == [True, True], names


def test_dashboard_declares_the_trackers_metrics_as_the_records_name_them(tmp_path):
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=1,
                          trackers=("bp_cosine", "weight_alignment"))
    summary = run_search(str(tmp_path), config, SearchSpace.create(SPACE), log=lambda *a: None)
    logged = {}
    for path in records.iter_record_paths(summary["project_dir"]):
        data = records.read(path)
        logged[data["hparams"]["algorithm"]] = {k for k in data["history"]
                                                if k.startswith(("bp_cosine_", "weight_alignment_"))}
    assert logged["bp"] == {"bp_cosine_1"} and logged["dfa"] == {"bp_cosine_1", "weight_alignment_2"}, logged

    experiment, groups = hparams_dashboard(tmp_path)
    declared = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("", f"{name}/train") for name in set.union(*logged.values())} <= declared, declared
    assert ("", "error_rate/validation") in declared  # the metrics it had stay
    (dfa,) = [g for g in groups if g["hparams"]["algorithm"] == "dfa"]
    shown = {(v["name"].get("group", ""), v["name"]["tag"]) for v in dfa["metricValues"]}
    assert ("", "weight_alignment_2/train") in shown and ("", "bp_cosine_1/train") in shown, shown


def test_a_reconstruction_search_declares_its_unexplained_variance_not_an_error_rate(tmp_path):
    config = SearchConfig(dataset="digits", problem_type="reconstruction", objective="val_loss")
    tensorboard_hparams.write_config(str(tmp_path / "tensorboard"), SearchSpace.create(SPACE), config)
    experiment, _ = hparams_dashboard(tmp_path)
    declared = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert declared == {("", f"{m}/{s}") for s in ("train", "validation") for m in ("loss", "unexplained_variance")}


# ---------------------------------------------------------------------------------------------- the layout
TAGS = {f"{m}/{s}" for m in ("loss", "error_rate") for s in ("train", "validation")}


def runs_with_events(tensorboard_dir):
    """The runs TensorBoard finds under `tensorboard_dir`: the directories holding event files."""
    return {os.path.relpath(root, tensorboard_dir) for root, _, files in os.walk(tensorboard_dir)
            if any("tfevents" in f for f in files)}


def run_data(run_dir):
    """({scalar tag: {step: value}}, {text tag: text}) of one run, as TensorBoard reads it."""
    acc = plugin_event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    out, texts = {}, {}
    for t in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(t).plugin_data.plugin_name
        values = {e.step: tensor_util.make_ndarray(e.tensor_proto) for e in acc.Tensors(t)}
        if plugin == "scalars":
            out[t] = {step: float(v) for step, v in values.items()}
        elif plugin == "text":
            texts[t] = values[0].item().decode()
    return out, texts


def search(tmp_path, lrs, num_epochs=2, executions=2):
    config = SearchConfig(dataset="digits", objective="val_error_rate", num_epochs=num_epochs,
                          executions_per_trial=executions)
    return run_search(str(tmp_path), config, SearchSpace.create({**SPACE, "lr": lrs}), log=lambda *a: None)


def test_one_run_per_execution_named_rule_first_with_metric_split_tags_and_a_best_run_per_rule(tmp_path):
    summary = search(tmp_path, [1e-2, 1e-3])
    tensorboard_dir = os.path.join(summary["project_dir"], "tensorboard")
    recorded = {(d["trial_id"], d["execution"]): d for d in map(records.read,
                                                                records.iter_record_paths(summary["project_dir"]))}
    assert len(recorded) == 8
    runs = runs_with_events(tensorboard_dir)
    executions = {f"{tid}/execution_{k}" for tid, k in recorded}
    (config_run,) = [r for r in runs if r.startswith("_hparams_config/")]
    assert runs == executions | {"best/bp", "best/dfa", config_run}, sorted(runs)  # one run per execution
    for (tid, k), data in recorded.items():
        assert tid.split("-")[0] == data["hparams"]["algorithm"]  # the run's name leads with its rule
        scalars, _ = run_data(os.path.join(tensorboard_dir, tid, f"execution_{k}"))
        assert TAGS <= set(scalars), scalars.keys()
        for name, tag in (("loss", "loss/train"), ("val_error_rate", "error_rate/validation")):
            assert list(scalars[tag]) == [0, 1]
            np.testing.assert_allclose(list(scalars[tag].values()), data["history"][name], rtol=1e-6)

    # The HParams dashboard: one session per execution, its metrics read from the run's own tags.
    _, groups = hparams_dashboard(tensorboard_dir)
    assert len(groups) == 8 and all(len(g["sessions"]) == 1 for g in groups)
    for g in groups:
        shown = {v["name"]["tag"] for v in g["metricValues"] if not v["name"].get("group")}
        assert TAGS <= shown, shown

    # best/<rule>: the trial results.best ranks first for the rule, its curves the mean over its executions.
    table = results.best(results.load(summary["project_dir"]))
    for rule in ("bp", "dfa"):
        tid = table[table["algorithm"] == rule].iloc[0]["trial_id"]
        scalars, texts = run_data(os.path.join(tensorboard_dir, "best", rule))
        assert TAGS <= set(scalars) and f"trial `{tid}`" in texts["best_configuration"], texts
        mean = np.mean([recorded[(tid, k)]["history"]["val_error_rate"] for k in (0, 1)], axis=0)
        np.testing.assert_allclose(list(scalars["error_rate/validation"].values()), mean, rtol=1e-6)


def test_the_hparams_config_lists_every_grid_hparam_with_a_value_the_search_grew(tmp_path):
    summary = search(tmp_path, [1e-2], num_epochs=1, executions=1)
    tensorboard_dir = os.path.join(summary["project_dir"], "tensorboard")
    running = plugin_event_multiplexer.EventMultiplexer()  # a TensorBoard open while the search grows
    experiment, _ = hparams_dashboard(tensorboard_dir, running)
    assert [i["domainDiscrete"] for i in experiment["hparamInfos"] if i["name"] == "lr"] == [[0.01]]
    search(tmp_path, [1e-2, 1e-3], num_epochs=1, executions=1)  # grown: lr 1e-3 joins
    assert len([r for r in runs_with_events(tensorboard_dir) if r.startswith("_hparams_config/")]) == 1
    experiment, groups = hparams_dashboard(tensorboard_dir)
    assert hparams_dashboard(tensorboard_dir, running)[0]["hparamInfos"] == experiment["hparamInfos"]
    infos = {i["name"]: i for i in experiment["hparamInfos"]}
    logged = set().union(*(records.read(p)["hparams"] for p in records.iter_record_paths(summary["project_dir"])))
    assert set(infos) == logged, (set(infos), logged)  # every hparam the runs log is a column
    assert infos["lr"]["domainDiscrete"] == [0.001, 0.01] and infos["algorithm"]["domainDiscrete"] == ["bp", "dfa"]
    assert {n for n, i in infos.items() if i.get("differs")} == {"algorithm", "lr"}
    # The dashboard shows its first five columns (searched ones first); lr among them.
    assert {"algorithm", "lr"} <= {i["name"] for i in experiment["hparamInfos"][:5]}
    assert sorted(g["hparams"]["lr"] for g in groups) == [0.001, 0.001, 0.01, 0.01]


def test_an_experiment_of_the_old_layout_resumes_with_one_run_per_execution(tmp_path):
    # Before: Keras's TensorBoard callback's train/ and validation/ sub-runs (tags epoch_<metric>, and
    # evaluation_<metric>_vs_iterations), the hparams in the execution's run, the config at the top.
    summary = search(tmp_path, [1e-2], num_epochs=1, executions=1)
    tensorboard_dir = os.path.join(summary["project_dir"], "tensorboard")
    shutil.rmtree(tensorboard_dir)
    old = {}
    for path in records.iter_record_paths(summary["project_dir"]):
        data = records.read(path)
        run_dir = os.path.join(tensorboard_dir, data["trial_id"], "execution_0")
        for sub, prefix in (("train", ""), ("validation", "val_")):
            with tf.summary.create_file_writer(os.path.join(run_dir, sub)).as_default():
                for name in ("loss", "error_rate"):
                    tf.summary.scalar(f"epoch_{name}", data["history"][prefix + name][0], step=0)
                if sub == "validation":
                    tf.summary.scalar("evaluation_loss_vs_iterations", data["history"]["val_loss"][0], step=28)
        tensorboard_hparams.write_run(run_dir, data["hparams"], 0, data["seed"], data["history"])
        old[data["trial_id"]] = data["history"]["val_error_rate"][0]
    with tf.summary.create_file_writer(tensorboard_dir).as_default():
        hp_api.hparams_config(hparams=[hp_api.HParam("lr", hp_api.Discrete([0.01]))], metrics=[])

    summary = search(tmp_path, [1e-2], num_epochs=2, executions=1)  # grown: both executions extended
    runs = runs_with_events(tensorboard_dir)
    assert runs == {f"{tid}/execution_0" for tid in old} | {"best/bp", "best/dfa"} | {
        r for r in runs if r.startswith("_hparams_config/")}, sorted(runs)  # no train/, validation/, nor "."
    for tid, first in old.items():
        scalars, _ = run_data(os.path.join(tensorboard_dir, tid, "execution_0"))
        assert TAGS <= set(scalars) and not any(t.startswith("evaluation_") for t in scalars), scalars.keys()
        assert list(scalars["error_rate/validation"]) == [0, 1]  # epoch 0 merged from the old run, 1 new
        np.testing.assert_allclose(scalars["error_rate/validation"][0], first, rtol=1e-6)
    experiment, _ = hparams_dashboard(tensorboard_dir)
    assert {"algorithm", "lr", "arch"} <= {i["name"] for i in experiment["hparamInfos"]}  # the new config


def test_a_merge_killed_before_removing_the_old_runs_is_not_merged_twice(tmp_path):
    run_dir = tmp_path / "tb" / "bp-16-x" / "execution_0"
    for step in (0, 1):
        with tf.summary.create_file_writer(str(run_dir / "train")).as_default():
            tf.summary.scalar("epoch_loss", 1.0 + step, step=step)
    assert tensorboard_runs.merge_old_layout(str(tmp_path / "tb")) == [str(run_dir)]
    merged = os.listdir(run_dir)
    for step in (0, 1):  # as if the process had been killed after writing the merged file
        with tf.summary.create_file_writer(str(run_dir / "train")).as_default():
            tf.summary.scalar("epoch_loss", 1.0 + step, step=step)
    tensorboard_runs.merge_old_layout(str(tmp_path / "tb"))
    assert os.listdir(run_dir) == merged
    scalars, _ = run_data(run_dir)
    assert scalars == {"loss/train": {0: 1.0, 1: 2.0}}


def test_an_extended_execution_has_one_hparams_session_in_its_run(tmp_path):
    """Each conclusion of an execution wrote another hparams file into its run, so one extended (or resumed and
    concluded again) listed its session and its seed twice; the latest replaces the earlier one now."""
    search(tmp_path, [1e-3], num_epochs=1, executions=1)
    search(tmp_path, [1e-3], num_epochs=2, executions=1)  # grown: the execution is extended and concludes again
    runs = [d for d in tmp_path.rglob("execution_0") if d.parent.parent.name == "tensorboard"]
    assert len(runs) == 2  # bp's and dfa's
    for run in runs:
        acc = plugin_event_accumulator.EventAccumulator(str(run))
        acc.Reload()
        sessions = [e for t in acc.Tags()["tensors"] if t == hparams_metadata.SESSION_START_INFO_TAG
                    for e in acc.Tensors(t)]
        assert len(sessions) == 1 and len(acc.Tensors("seed")) == 1, run
        scalars, _ = run_data(run)
        assert len(next(v for t, v in scalars.items() if t.startswith("loss"))) == 2  # both epochs, once each
