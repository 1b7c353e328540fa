"""What TensorBoard's HParams dashboard shows of a search, read through the dashboard's own HTTP API."""

import json

from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from werkzeug.test import Client

from bpfree import records
from bpfree.tuning import SearchConfig, SearchSpace, run_search, tensorboard_hparams, trial_id

SPACE = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
         "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}


def hparams_dashboard(logdir):
    """(experiment, session groups) as `tensorboard --logdir logdir` serves them to the HParams dashboard."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
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
    assert {("train", f"epoch_{name}") for name in set.union(*logged.values())} <= declared, declared
    assert ("validation", "epoch_error_rate") in declared  # the metrics it had stay
    (dfa,) = [g for g in groups if g["hparams"]["algorithm"] == "dfa"]
    shown = {(v["name"].get("group", ""), v["name"]["tag"]) for v in dfa["metricValues"]}
    assert ("train", "epoch_weight_alignment_2") in shown and ("train", "epoch_bp_cosine_1") in shown, shown


def test_a_reconstruction_search_declares_its_unexplained_variance_not_an_error_rate(tmp_path):
    config = SearchConfig(dataset="digits", problem_type="reconstruction", objective="val_loss")
    tensorboard_hparams.write_config(str(tmp_path / "tensorboard"), SearchSpace.create(SPACE), config)
    experiment, _ = hparams_dashboard(tmp_path)
    declared = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert declared == {(g, f"epoch_{m}") for g in ("train", "validation") for m in ("loss", "unexplained_variance")}
