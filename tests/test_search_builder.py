"""Searches over a user's model: an arch value "module:function(key=value,...)" names a Keras model builder
(`bpfree.builders`); its grid points train the converted model through the same engine, records, growth
and report as arch strings."""

import os
import sys

import pytest

from bpfree import builders, records
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning.space import SpaceError

HERE = os.path.dirname(os.path.abspath(__file__))
SPACE = {"algorithm": ["bp", "dfa", "fa"], "arch": ["user_models:mlp(width=12)", "user_models:mlp( width = 20 )"],
         "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}
CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=1)


@pytest.fixture(autouse=True)
def _user_models_importable(monkeypatch):
    monkeypatch.syspath_prepend(HERE)


def quiet(*args):
    pass


def by_point(directory):
    out = {}
    for path in records.iter_record_paths(str(directory)):
        data = records.read(path)
        out[(data["hparams"]["algorithm"], data["hparams"]["arch"], data["hparams"]["lr"], data["execution"])] = data
    return out


def test_parse_and_canonical_spelling():
    assert builders.canonical("a.b:f( width = 20, act='relu' )") == "a.b:f(act='relu',width=20)"
    assert builders.parse("a.b:f") == ("a.b", "f", {})
    for bad in ("a.b:f(20)", "a.b:f(x=open)", "a.b:", "a:b:c", "a.b:f(**k)", "a.b:f(seed=1)", "a.b:f(dropout=0.1)"):
        with pytest.raises(ValueError, match="Invalid arch"):
            builders.parse(bad)
    with pytest.raises(SpaceError, match="Invalid arch 'user_models:mlp\\(3\\)'"):
        SearchSpace.create({**SPACE, "arch": ["user_models:mlp(3)"]})


def test_a_search_over_a_builder_trains_each_point_and_its_records_name_the_builder(tmp_path):
    space = SearchSpace.create(SPACE)
    summary = run_search(str(tmp_path / "exp"), SearchConfig(**CONFIG), space, log=quiet)
    assert summary["grid_points"] == 6 and summary["accidents"] == []
    found = by_point(tmp_path / "exp")
    assert {(a, arch) for a, arch, _, _ in found} == {(a, arch) for a in ("bp", "dfa", "fa")
                                                    for arch in ("user_models:mlp(width=12)", "user_models:mlp(width=20)")}
    assert all(r["status"] == "completed" and len(r["history"]["val_error_rate"]) == 2 for r in found.values())
    # The same command again trains nothing and changes nothing; a second directory gives the same numbers.
    run_search(str(tmp_path / "again"), SearchConfig(**CONFIG), space, log=quiet)
    again = by_point(tmp_path / "again")
    for key, record in found.items():
        assert again[key]["history"] == record["history"], key


def test_the_members_engine_and_fit_agree_on_a_builder(tmp_path):
    space = SearchSpace.create({**SPACE, "algorithm": ["dfa"], "arch": ["user_models:mlp(width=12)"],
                                "lr": [1e-3, 1e-2]})
    config = SearchConfig(**{**CONFIG, "use_xla": True})
    lines = []
    run_search(str(tmp_path / "members"), config, space, log=lines.append, engine=EngineOptions(members=2))
    run_search(str(tmp_path / "fit"), config, space, log=quiet, engine=EngineOptions(fit=True))
    members, fit = by_point(tmp_path / "members"), by_point(tmp_path / "fit")
    assert members.keys() == fit.keys() and len(members) == 2
    assert all(r["engine"] == {"members": 2, "xla": True, "vectorized": True} for r in members.values()), lines
    for key, record in fit.items():
        for metric, values in record["history"].items():
            assert members[key]["history"][metric] == pytest.approx(values, rel=1e-5), (key, metric)


def test_a_builder_without_a_seed_argument_is_seeded_through_keras(tmp_path):
    space = SearchSpace.create({**SPACE, "algorithm": ["bp"], "arch": ["user_models:unseeded_cnn"]})
    run_search(str(tmp_path / "a"), SearchConfig(**{**CONFIG, "num_epochs": 1}), space, log=quiet)
    run_search(str(tmp_path / "b"), SearchConfig(**{**CONFIG, "num_epochs": 1}), space, log=quiet)
    (a,), (b,) = by_point(tmp_path / "a").values(), by_point(tmp_path / "b").values()
    assert a["history"] == b["history"]


@pytest.mark.parametrize("change,message", [
    ({"arch": ["user_models:nothing_here"]}, "module 'user_models' has no function 'nothing_here'"),
    ({"arch": ["no_such_module_xyz:f"]}, "module 'no_such_module_xyz' cannot be imported"),
    ({"arch": ["user_models:not_a_model"]}, "returned str, not a keras.Model"),
    ({"arch": ["user_models:unseeded_cnn"], "activation": ["tanh", "relu"]},
     "activation takes several values but the builder of arch 'user_models:unseeded_cnn' has no such argument"),
    ({"algorithm": ["dtp"]}, "rule 'dtp'.*rules that train a converted model"),
])
def test_bad_builders_are_refused_before_training(tmp_path, change, message):
    space = SearchSpace.create({**SPACE, **change})
    with pytest.raises(ValueError, match=message):
        run_search(str(tmp_path / "exp"), SearchConfig(**CONFIG), space, log=quiet)
    assert not list(records.iter_record_paths(str(tmp_path / "exp"))) if os.path.isdir(tmp_path / "exp") else True


def test_weight_decay_is_refused_for_a_builder(tmp_path):
    with pytest.raises(ValueError, match="Invalid weight_decay 0.1 for arch 'user_models:mlp\\(width=12\\)'"):
        run_search(str(tmp_path / "exp"), SearchConfig(**{**CONFIG, "weight_decay": 0.1}),
                   SearchSpace.create({**SPACE, "arch": ["user_models:mlp(width=12)"]}), log=quiet)


def test_the_command_line_takes_a_builder_arch(tmp_path, cli_in_process, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    assert HERE in sys.path
    done = cli_in_process(str(tmp_path / "exp"), "--dataset", "digits", "--num_epochs", "1", "--executions_per_trial",
                          "1", "--algorithm", "fa",
                          "--arch", "user_models:mlp(width=8)", "--lr", "0.01", "--activation", "tanh",
                          "--batchnorm=false")
    assert done.returncode == 0, done.stderr
    (record,) = by_point(tmp_path / "exp").values()
    assert record["hparams"]["arch"] == "user_models:mlp(width=8)" and record["status"] == "completed"


def test_a_builder_search_grows_like_any_other(tmp_path):
    """More epochs and a second seed on an existing builder search give what a fresh search gives."""
    space = SearchSpace.create({**SPACE, "algorithm": ["fa"], "arch": ["user_models:mlp(width=12)"], "dropout": [0.2]})
    run_search(str(tmp_path / "grown"), SearchConfig(**{**CONFIG, "num_epochs": 1}), space, log=quiet)
    grown_config = SearchConfig(**{**CONFIG, "num_epochs": 2, "executions_per_trial": 2})
    run_search(str(tmp_path / "grown"), grown_config, space, log=quiet)
    run_search(str(tmp_path / "fresh"), grown_config, space, log=quiet)
    grown, fresh = by_point(tmp_path / "grown"), by_point(tmp_path / "fresh")
    assert grown.keys() == fresh.keys() and len(grown) == 2
    for key, record in fresh.items():
        assert grown[key]["history"] == record["history"], key
