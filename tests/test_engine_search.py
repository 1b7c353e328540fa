"""The engine in a search (issue 22): executions of one structure trained as the members of one program
(`bpfree.tuning.engine`) record exactly what each records alone — in a program where it is the only
execution — epoch by epoch, bit for bit, whatever the number of members, and what `fit` records
within float32 rounding (rtol 1e-5); whether a member diverges, stops early, or the search is killed
and resumed."""

import functools
import os
import subprocess
import sys

import pytest

from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning import engine as engine_module
import search_records
from fresh_process import kill_9_when

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = {"algorithm": ["bp"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"],
         "lr": [1e-3, 1e-2], "dropout": [0.1]}
# XLA: under it a member's numbers do not depend on how many members share its program (without it they
# depend on the program's capacity, fixed for a search: tests/test_engine.py).
CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=2, executions_per_trial=2, use_xla=True)


def quiet(*args):
    pass


# NaN in a history written as the string "nan", so that histories compare with == (also for test_trials.py and
# test_test_each_epoch.py, which import it from here).
found = functools.partial(search_records.found, nan_as_text=True)


def assert_same_records(grouped, alone):
    assert grouped.keys() == alone.keys() and grouped
    for key, record in alone.items():
        other = grouped[key]
        assert list(other) == list(record), key  # the same fields, in the same order
        for field in ("status", "hparams", "seed", "search", "error"):
            assert other[field] == record[field], (key, field)
        assert list(other["history"]) == list(record["history"]), key
        assert other["history"] == record["history"], key  # bit for bit
        assert other.get("test") == record.get("test"), key


def assert_close_records(engine, fit):
    """The engine's records against fit's with XLA (`fit_with_xla`): the same fields and statuses, every
    number within rtol 1e-5 (the same equations; XLA fuses them otherwise in one program than in the
    other). Without XLA fit draws other dropout masks (TensorFlow picks another random algorithm)."""
    assert engine.keys() == fit.keys() and fit
    for key, record in fit.items():
        other = engine[key]
        assert set(other) == set(record), key
        for field in ("status", "hparams", "seed"):
            assert other[field] == record[field], (key, field)
        for metric, values in record["history"].items():
            assert other["history"][metric] == pytest.approx(values, rel=1e-5, nan_ok=True), (key, metric)


def programs(monkeypatch):
    """Every MemberProgram made from now on, in order."""
    made = []
    original = engine_module.MemberProgram.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(engine_module.MemberProgram, "__init__", init)
    return made


@pytest.mark.parametrize("algorithms", [
    ["bp", "dfa"], pytest.param(["bp", "fa", "dfa", "drtp", "cce"], marks=pytest.mark.slow)])
def test_each_rule_as_members_records_what_it_records_alone(tmp_path, monkeypatch, algorithms):
    """bp, fa, dfa, drtp, cce (the fast tier: bp and dfa) with dropout (each member its own masks): 3
    members for 4 executions a rule, so a program is reused by a second, partly filled group; bit for
    bit against programs of the fewest members (one execution each), and against fit within rtol 1e-5."""
    config = SearchConfig(**CONFIG)
    space = SearchSpace.create({**SPACE, "algorithm": algorithms})
    n = 4 * len(algorithms)
    run_search(str(tmp_path / "fit"), SearchConfig(**{**CONFIG, "use_xla": True}), space, log=quiet,
               engine=EngineOptions(fit=True))
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(members=1))
    made = programs(monkeypatch)
    lines = []
    run_search(str(tmp_path / "grouped"), config, space, log=lines.append, engine=EngineOptions(members=3))
    assert_same_records(found(tmp_path / "grouped"), found(tmp_path / "alone"))
    assert_close_records(found(tmp_path / "grouped"), found(tmp_path / "fit"))
    assert len(made) == len(algorithms) and all(p.capacity == 3 for p in made)  # one program per rule, none made twice
    engines = {d["engine"]["members"] for d in found(tmp_path / "grouped").values()}
    assert engines == {3} and all(d["engine"] == {"fit": True, "xla": True} for d in found(tmp_path / "fit").values())
    assert not list(tmp_path.rglob("*.ckpt.npz"))
    runs = {p.parent for p in (tmp_path / "grouped").rglob("events.out.tfevents.*") if p.parent.name.startswith("exec")}
    assert len(runs) == n  # TensorBoard: one run per execution, as under fit (tests/test_tensorboard.py)
    assert sum("execution" in line and "val_error_rate (final) = " in line for line in lines) == n


def test_a_diverging_member_is_frozen_and_the_others_train_on_unchanged(tmp_path):
    config = SearchConfig(**{**CONFIG, "objective": "loss"})
    space = SearchSpace.create({**SPACE, "activation": ["linear"], "lr": [1e-3, 1e30], "dropout": [0.0]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(members=1))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet, engine=EngineOptions(members=4))  # all four in one program
    grouped = found(tmp_path / "grouped")
    assert_same_records(grouped, found(tmp_path / "alone"))
    status = {d["hparams"]["lr"]: d["status"] for d in grouped.values()}
    assert status == {1e-3: "completed", 1e30: "diverged"}


def test_early_stopping_stops_each_member_on_its_own(tmp_path):
    config = SearchConfig(**{**CONFIG, "num_epochs": 6, "use_early_stopping": True, "early_stopping_patience": 1})
    space = SearchSpace.create({**SPACE, "lr": [1e-3, 0.3]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(members=1))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet, engine=EngineOptions(members=4))
    grouped = found(tmp_path / "grouped")
    assert_same_records(grouped, found(tmp_path / "alone"))
    lengths = sorted(len(d["history"]["loss"]) for d in grouped.values())
    assert lengths[0] < 6 == lengths[-1]  # one stopped early while another trained on


def test_a_program_is_traced_once_and_serves_every_later_group_of_its_structure(tmp_path, monkeypatch):
    made = programs(monkeypatch)
    config = SearchConfig(**{**CONFIG, "num_epochs": 1})
    space = SearchSpace.create({**SPACE, "algorithm": ["bp", "dfa"], "lr": [1e-3, 3e-3, 1e-2]})
    run_search(str(tmp_path), config, space, log=quiet, engine=EngineOptions(members=2))  # 2 groups a rule
    assert len(made) == 2
    for program in made:
        assert program._epoch.experimental_get_tracing_count() == 1
        assert program._evaluate.experimental_get_tracing_count() == 1
    assert len(found(tmp_path)) == 12


def test_rules_with_their_own_train_step_train_one_at_a_time_and_say_so(tmp_path):
    lines = []
    config = SearchConfig(**{**CONFIG, "num_epochs": 1, "executions_per_trial": 1})
    space = SearchSpace.create({**SPACE, "algorithm": ["ff", "bp"], "lr": [1e-3], "dropout": [0.0]})
    run_search(str(tmp_path), config, space, log=lines.append, engine=EngineOptions(members=4))
    assert any("train through fit (FFNetwork has its own train step)" in line for line in lines), lines
    assert {d["status"] for d in found(tmp_path).values()} == {"completed"}


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "bpfree", *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


PRESET = """
[search]
dataset = "digits"
objective = "val_error_rate"
num_epochs = 12
executions_per_trial = 2
use_xla = true

[space]
algorithm = ["bp", "dfa"]
arch = ["16"]
activation = ["tanh"]
batchnorm = [false]
bw_init = ["ortho"]
lr = [1e-3, 1e-2]
dropout = [0.1]
"""


@pytest.mark.slow  # the fast tier kills and resumes a grouped search in tests/test_search_trust.py
def test_kill9_during_a_grouped_run_then_resume_gives_the_same_records(tmp_path):
    preset = tmp_path / "preset.toml"
    preset.write_text(PRESET)
    config = SearchConfig(**{**CONFIG, "num_epochs": 12})
    space = SearchSpace.create({**SPACE, "algorithm": ["bp", "dfa"]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(members=4))
    reference = found(tmp_path / "alone")

    killed = tmp_path / "killed"
    proc = _cli(killed, "--hparams", preset, "--members", 4, "--checkpoint_seconds", 0)

    def mid_way():  # a group is mid-way: checkpoints and partial records exist
        now = found(killed) if killed.exists() else {}
        return any(d["status"] == "running" and len(d["history"].get("loss", [])) >= 2 for d in now.values()) \
            and bool(list(killed.rglob("*.ckpt.npz")))

    kill_9_when(proc, mid_way, seconds=240, poll_seconds=0.1)
    resumed = _cli(killed, "--hparams", preset, "--members", 4, "--checkpoint_seconds", 0)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    after = found(killed)
    assert any(d.get("resumed_at_epochs") for d in after.values()), "no execution resumed mid-way"
    for key, record in reference.items():
        assert after[key]["status"] == record["status"] and after[key]["history"] == record["history"], key
    assert not list(killed.rglob("*.ckpt.npz"))


@pytest.mark.slow
def test_xla_group_programs_match_fit_with_xla(tmp_path):
    """With XLA the step of all slots is one XLA program (compiled per batch shape); XLA's fusions round
    differently from the graph's kernels, so the comparison is to fit with XLA, within float32 noise."""
    config = SearchConfig(**{**CONFIG, "use_xla": True})
    space = SearchSpace.create({**SPACE, "algorithm": ["bp", "dfa"]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(fit=True))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet, engine=EngineOptions(members=4))
    alone, grouped = found(tmp_path / "alone"), found(tmp_path / "grouped")
    assert alone.keys() == grouped.keys()
    for key, record in alone.items():
        for metric, values in record["history"].items():
            assert grouped[key]["history"][metric] == pytest.approx(values, rel=1e-5), (key, metric)


@pytest.mark.slow
def test_conv_and_dense_archs_grouped_record_what_fit_records(tmp_path):
    """Each structure its own program, fed images or flat vectors as its arch reads them."""
    config = SearchConfig(**{**CONFIG, "num_epochs": 1})
    space = SearchSpace.create({**SPACE, "algorithm": ["bp", "dfa"], "arch": ["conv4k3-pool2-16", "16"], "lr": [1e-2]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(members=1))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet, engine=EngineOptions(members=2))
    assert_same_records(found(tmp_path / "grouped"), found(tmp_path / "alone"))


def test_a_resume_without_xla_refuses_another_member_count(tmp_path):
    """Without XLA a member's numbers depend on its program's member count: a search resumed (or grown) with
    another --members than its records were trained with is refused, naming the flag that matches them."""
    space = SearchSpace.create({**SPACE, "dropout": [0.0]})
    config = SearchConfig(**{**CONFIG, "use_xla": False, "num_epochs": 1})
    lines = []
    run_search(str(tmp_path / "exp"), config, space, log=lines.append, engine=EngineOptions(members=2))
    assert not any("one after another" in line for line in lines), lines  # nothing fell back: no "(None)" line
    grown = SearchConfig(**{**CONFIG, "use_xla": False, "num_epochs": 2})
    with pytest.raises(ValueError, match="trained without XLA by programs of 2 members, and this search would "
                                         "train by programs of 1 members.*re-run with --members 2"):
        run_search(str(tmp_path / "exp"), grown, space, log=quiet, engine=EngineOptions(members=0))
    with pytest.raises(ValueError, match="would train through fit.*--members 2"):
        run_search(str(tmp_path / "exp"), grown, space, log=quiet, engine=EngineOptions(fit=True))
    lines = []
    run_search(str(tmp_path / "exp"), grown, space, log=lines.append, engine=EngineOptions(members=2))  # grows
    run_search(str(tmp_path / "one"), config, space, log=lines.append, engine=EngineOptions(members=1))
    assert not any("(None)" in line for line in lines), lines  # a program of one member is no fallback
