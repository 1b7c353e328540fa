"""Every registered rule resumes bitwise (issue 26, item 1): each execution of a search is stopped after the
checkpoint of its second epoch (an accident in its callbacks, as a kill leaves it: record and checkpoint
written, nothing after), the search is run again, and every record equals the uninterrupted search's, float
for float. Executions share member programs (two seeds a point; brsf's per-seed programs included), so an
execution resumes in a program whose other member did not stop at the same epoch. The rules come from the
registry: a new rule fails `test_every_registered_rule_is_covered` until a grid here names it."""

import pytest

from bpfree.rules import registry
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from bpfree.tuning import execution as execution_module
from search_records import found

DENSE = {"arch": ["16"], "activation": ["tanh"], "batchnorm": [False], "bw_init": ["ortho"], "lr": [1e-2],
         "dropout": [0.1]}
GRIDS = {  # name -> the space (dropout where the rules take it: its generator's state must resume too)
    "feedforward": {**DENSE, "algorithm": ["bp", "fa", "kp", "usf", "brsf", "frsf", "dfa", "drtp", "sdfa", "cce",
                                           "mse"]},
    "without_dropout": {**DENSE, "algorithm": ["dtp", "tp_lsq", "tp_rinv", "pepita", "ff"], "dropout": [0.0]},
    "invertible": {**DENSE, "algorithm": ["gait", "tp", "bp_inv"], "arch": ["64"], "activation": ["lrelu"],
                   "dropout": [0.0]},
    "gle": {**DENSE, "algorithm": ["gle", "le"], "dropout": [0.0], "gle": {"steps": [3]}, "le": {"steps": [3]}},
    "conv": {**DENSE, "algorithm": ["brsf", "fa", "dfa", "kp"], "arch": ["conv4k3-pool2-16"], "dropout": [0.1]},
}
CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=3, executions_per_trial=2, use_xla=False)


def quiet(*args):
    pass


def stop_every_execution_after_epoch(monkeypatch, epoch):
    """Each execution's callbacks raise once, right after its record and checkpoint of `epoch` are written."""
    original = execution_module.RecordCallback.on_epoch_end
    original_init = execution_module.RecordCallback.__init__
    stopped = set()

    def every_epoch(self, execution, num_epochs, checkpoint_seconds):
        original_init(self, execution, num_epochs, 0)

    def on_epoch_end(self, e, logs=None):
        original(self, e, logs)
        key = (self.execution.tid, self.execution.execution)
        if e == epoch and key not in stopped:
            stopped.add(key)
            raise RuntimeError("stopped after its checkpoint, as a kill would")

    monkeypatch.setattr(execution_module.RecordCallback, "on_epoch_end", on_epoch_end)
    monkeypatch.setattr(execution_module.RecordCallback, "__init__", every_epoch)
    return stopped


def test_every_registered_rule_is_covered():
    covered = {a for space in GRIDS.values() for a in space["algorithm"]}
    assert set(registry.names()) <= covered, f"not resumed here: {set(registry.names()) - covered}"


# The per-step randomness the issue names first (brsf's draws, dropout's masks) in the fast tier; the other
# families (each ~1-2 minutes on 2 cores) in the slow one.
FAST_GRIDS = ("feedforward", "conv")


@pytest.mark.parametrize("grid", [g if g in FAST_GRIDS else pytest.param(g, marks=pytest.mark.slow) for g in GRIDS])
def test_every_rule_resumes_bitwise_in_a_member_program(tmp_path, monkeypatch, grid):
    space, config, engine = SearchSpace.create(GRIDS[grid]), SearchConfig(**CONFIG), EngineOptions(members=2)
    run_search(str(tmp_path / "once"), config, space, log=quiet, engine=engine)
    with monkeypatch.context() as patch:
        stopped = stop_every_execution_after_epoch(patch, epoch=1)
        first = run_search(str(tmp_path / "twice"), config, space, log=quiet, engine=engine)
    assert len(first["unfinished"]) == len(stopped) == len(found(tmp_path / "once"))
    summary = run_search(str(tmp_path / "twice"), config, space, log=quiet, engine=engine)
    assert summary["unfinished"] == []
    once, twice = found(tmp_path / "once"), found(tmp_path / "twice")
    assert once.keys() == twice.keys()
    for key, record in once.items():
        assert twice[key]["resumed_at_epochs"] == [2], key
        assert twice[key]["history"] == record["history"], key  # bitwise
