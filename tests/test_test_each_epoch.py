"""`test_each_epoch` (issue 21): the test split evaluated after every epoch, recorded as history test_*, the
same through `fit` and the member programs (within rtol 1e-5), equal to the end-of-run test evaluation at the last epoch, and
never part of what chooses a trial."""

import pytest

from bpfree import results
from bpfree.tuning import EngineOptions, SearchConfig, SearchSpace, run_search
from test_engine_search import SPACE, assert_close_records, found, quiet

CONFIG = dict(dataset="digits", objective="val_error_rate", num_epochs=3, executions_per_trial=1, use_xla=True,
              test_each_epoch=True, score="best")


@pytest.mark.parametrize("protocol", [{}, dict(optimizer="sgd", momentum=0.9, lr_schedule="step", lr_milestones=[1])],
                         ids=["adam", "sgd-momentum-step"])
def test_each_epochs_test_metrics_are_recorded_alike_through_fit_and_the_grouped_engine(tmp_path, protocol):
    config = SearchConfig(**CONFIG, **protocol)
    space = SearchSpace.create({**SPACE, "algorithm": ["bp", "dfa"], "dropout": [0.0]})
    run_search(str(tmp_path / "alone"), config, space, log=quiet, engine=EngineOptions(fit=True))
    run_search(str(tmp_path / "grouped"), config, space, log=quiet, engine=EngineOptions(members=2))
    alone, grouped = found(tmp_path / "alone"), found(tmp_path / "grouped")
    assert_close_records(grouped, alone)
    for record in [*alone.values(), *grouped.values()]:
        history = record["history"]
        assert len(history["test_error_rate"]) == len(history["test_loss"]) == 3
        # the end-of-run evaluation is the last epoch's
        assert history["test_error_rate"][-1] == pytest.approx(record["test"]["error_rate"], abs=1e-6)
        assert history["test_loss"][-1] == pytest.approx(record["test"]["loss"], rel=1e-5)
        assert history["test_error_rate"] != history["val_error_rate"]  # another split, not a copy
    frame = results.load(str(tmp_path / "alone"))
    assert results.recorded_objective(frame) == "val_error_rate"  # the test split never becomes the objective


def test_records_made_before_the_setting_existed_count_as_without_it():
    assert SearchConfig.completed({"validation_frac": 0.1})["test_each_epoch"] is False


def test_test_each_epoch_must_be_a_bool():
    with pytest.raises(ValueError, match="test_each_epoch"):
        SearchConfig(test_each_epoch="yes")
