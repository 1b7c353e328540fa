"""bpfree.checks, the one way bad input is refused (one line naming the bad value and the valid ones, exit 2
from the CLIs), and bpfree.io.write_atomic as the curves PNG's writer (issue 12, "one of each")."""

import math
import os

import pytest

from bpfree import checks, records, results


class Custom(ValueError):
    pass


# ----------------------------------------------------------------------------------- message shapes
def test_choice_returns_a_valid_value_and_names_the_valid_ones_otherwise():
    assert checks.choice("scaler", "standard", ("standard", "identity")) == "standard"
    with pytest.raises(ValueError) as info:
        checks.choice("scaler", "minmax", ("standard", "identity"))
    assert str(info.value) == "Unknown scaler 'minmax'; valid: standard, identity."


def test_choice_label_owner_and_error_class():
    with pytest.raises(Custom) as info:
        checks.choice("activation", "elu", ["tanh", "relu"], error=Custom, label="Invalid", owner="gle")
    assert str(info.value) == "Invalid activation 'elu' for gle; valid: tanh, relu."


@pytest.mark.parametrize("value", [["adam"], {"a": 1}, None, 3, True])
def test_choice_refuses_any_value_outside_valid_even_unhashable(value):
    with pytest.raises(ValueError, match=r"^Unknown optimizer .*; valid: adam, sgd\.$"):
        checks.choice("optimizer", value, {"adam": 1, "sgd": 2})


def test_choice_with_nothing_valid_says_none():
    with pytest.raises(ValueError, match=r"; valid: none\.$"):
        checks.choice("tracker", "x", ())


def test_unknown_is_the_exception_choice_raises_returned_not_raised():
    error = checks.unknown("optimizer", "adamw", ("adam", "sgd"), error=Custom, owner="search")
    assert isinstance(error, Custom)
    assert str(error) == "Unknown optimizer 'adamw' for search; valid: adam, sgd."
    with pytest.raises(Custom) as info:
        checks.choice("optimizer", "adamw", ("adam", "sgd"), error=Custom, owner="search")
    assert str(info.value) == str(error)


def test_invalid_message_shape():
    error = checks.invalid("gamma", -1.0, "a number > 0", owner="tp_rinv")
    assert type(error) is ValueError
    assert str(error) == "Invalid gamma -1.0 for tp_rinv: a number > 0."
    assert str(checks.invalid("dt", "x", "must be > 0", error=Custom)) == "Invalid dt 'x': must be > 0."


@pytest.mark.parametrize("value", [-1.0, 0, math.nan, math.inf, -math.inf, True, "1", None, [1]])
def test_number_refuses_non_finite_non_numbers_bools_and_out_of_range(value):
    with pytest.raises(ValueError) as info:
        checks.number("gamma", value, lambda v: v > 0, "a number > 0")
    assert str(info.value) == f"Invalid gamma {value!r}: a number > 0."


@pytest.mark.parametrize("value", [0.5, 3, 1e-12])
def test_number_returns_valid_values_unchanged(value):
    assert checks.number("gamma", value, lambda v: v > 0, "a number > 0") is value


@pytest.mark.parametrize("value", [2.5, 2.0, True, "2", None, 0, -3])
def test_whole_refuses_non_integers_bools_and_out_of_range(value):
    with pytest.raises(Custom, match=r"^Invalid steps .*: an integer ≥ 1\.$"):
        checks.whole("steps", value, lambda v: v >= 1, "an integer ≥ 1", error=Custom)


def test_whole_returns_valid_values():
    assert checks.whole("steps", 7, lambda v: v >= 1, "an integer ≥ 1") == 7


def test_messages_are_one_line():
    for error in (checks.unknown("x", "a\nb", ["c"]), checks.invalid("x", "a\nb", "d")):
        assert "\n" not in str(error)


# ------------------------------------------------------------------------------------ exit semantics
@pytest.mark.parametrize("args,message", [
    (["--workers=-1"], "Invalid --workers -1: must be ≥ 0."),
    (["--rule_hparam", "orthogonal_reg"],
     "Invalid --rule_hparam 'orthogonal_reg': expected RULE.NAME=VALUE, e.g. gait.orthogonal_reg=0.1."),
    (["--optimizer", "adamw"], "Unknown optimizer 'adamw'; valid: adam, torch_adam, uncorrected_adam, sgd."),
    (["--problem_type", "regression"], "Unknown problem_type 'regression'; valid: classification, reconstruction."),
    (["--scaler", "minmax"], "Unknown scaler 'minmax'; valid: standard, zero_one, identity, mean_std."),
])
def test_the_search_cli_prints_a_checks_message_and_exits_2(tmp_path, cli_in_process, args, message):
    proc = cli_in_process(tmp_path / "exp", "--dataset", "digits", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1] == f"error: {message}"
    assert not (tmp_path / "exp").exists() or not list((tmp_path / "exp").rglob("execution_*.json"))


def write_experiment(directory):
    for trial, algorithm, losses in (("t1", "bp", [1.0, 0.5]), ("t2", "fa", [1.2, 0.8])):
        for execution in (0, 1):
            record = records.ExecutionRecord(str(directory), trial, execution, {"algorithm": algorithm, "lr": 1e-3},
                                             seed=execution)
            for loss in losses:
                record.append_epoch({"loss": loss + 0.01 * execution})
            record.finish("completed")
    return str(directory)


def test_the_results_cli_prints_a_checks_message_and_exits_2(tmp_path, capsys):
    experiment = write_experiment(tmp_path / "exp")
    assert results.main([experiment, "--objective", "accuracy"]) == 2
    assert capsys.readouterr().err.strip() == "error: Unknown objective 'accuracy' for these records; valid: loss."
    assert results.main([experiment, "--objective", "loss", "--by", "optimiser"]) == 2
    assert capsys.readouterr().err.strip() == ("error: Unknown hparam 'optimiser' for grouping; "
                                               "valid: algorithm, lr.")


# ------------------------------------------------------------------------------------ the curves PNG
def stray_files(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith(".tmp-"))


def test_the_curves_png_is_written_whole_with_the_umask_permissions(tmp_path):
    frame = results.load(write_experiment(tmp_path / "exp"))
    path = tmp_path / "plots" / "curves.png"
    assert results.plot_curves(frame, "loss", by="algorithm", path=str(path)) == str(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
    assert stray_files(path.parent) == []


def test_a_failing_savefig_leaves_the_old_curves_and_no_temporary_file(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    frame = results.load(write_experiment(tmp_path / "exp"))
    path = tmp_path / "curves.png"
    written = []

    def half_then_fail(self, target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"\x89PNG half a figure")
        written.append(str(target))
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        results.plot_curves(frame, "loss", by="algorithm", path=str(path))
    assert written and written[0] != str(path)  # drawn beside the target, under a temporary name
    assert not path.exists()
    assert stray_files(tmp_path) == []

    path.write_bytes(b"the previous curves")
    with pytest.raises(OSError, match="disk full"):
        results.plot_curves(frame, "loss", by="algorithm", path=str(path))
    assert path.read_bytes() == b"the previous curves"
    assert stray_files(tmp_path) == []


def test_the_dataset_cache_writes_through_write_atomic(tmp_path, monkeypatch):
    """A prepared-dataset .npz that fails half-way leaves neither a partial cache nor a temporary file."""
    import numpy as np

    from bpfree.datasets import cache

    path = tmp_path / "arrays.npz"
    cache.save_arrays(str(path), x=np.arange(3))
    np.testing.assert_array_equal(cache.load_arrays(str(path))["x"], np.arange(3))

    def half_then_fail(f, **arrays):
        f.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        cache.save_arrays(str(path), x=np.arange(5))
    np.testing.assert_array_equal(cache.load_arrays(str(path))["x"], np.arange(3))
    assert stray_files(tmp_path) == []
