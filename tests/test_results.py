"""bpfree.results and its report over small synthetic record files (records.py's format): the objective and
score each search was run with, grouping, experiment records, test scores, the console table, the report,
no TensorFlow; and the project names and config checks of rule hparams."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bpfree import records, results, scoring
from bpfree.tuning import SearchConfig, SearchSpace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = {"arch": "16", "activation": "tanh", "batchnorm": False, "bw_init": "ortho", "lr": 1e-3, "dropout": 0.0}
PROJECT = "digits-classification-val_error_rate"


def write(directory, trial_id, execution, hparams, history, search=None, test=None, status="completed",
          project=PROJECT):
    """One record file as a search (search settings given) or an experiment (none) writes it."""
    record = records.ExecutionRecord(os.path.join(str(directory), project) if project else str(directory),
                                     trial_id, execution, hparams, seed=execution, search=search)
    record.data["history"] = {k: list(v) for k, v in history.items()}
    if test is not None:
        record.data["test"] = test
    record.finish(status)
    return record.path


def search(objective="val_error_rate", **settings):
    return {"dataset": "digits", "objective": objective, "num_epochs": 3, **settings}


def point(algorithm, **hparams):
    return {"algorithm": algorithm, **COMMON, **hparams}


# ----------------------------------------------------------------------------------------- scoring
def test_execution_score_final_best_and_last_k():
    history = {"val_loss": [0.9, 0.5, 0.7, 0.6]}
    assert scoring.execution_score(history, "val_loss", "final") == (0.6, 3)
    assert scoring.execution_score(history, "val_loss", "best") == (0.5, 1)
    value, epoch = scoring.execution_score(history, "val_loss", "last2")
    assert value == pytest.approx(0.65) and epoch is None
    assert scoring.execution_score(history, "val_loss", "last9")[0] == pytest.approx(0.675)  # all there are
    assert scoring.execution_score({"val_loss": [0.4, 0.2, 0.2]}, "val_loss", "best") == (0.2, 1)  # the first


def test_execution_score_of_a_diverged_or_empty_execution_is_nan_not_an_earlier_value():
    diverged = {"loss": [0.9, 0.5, None]}
    for score in ("final", "last2"):
        value, epoch = scoring.execution_score(diverged, "loss", score)
        assert math.isnan(value) and epoch is None, score
    assert scoring.execution_score(diverged, "loss", "best") == (0.5, 1)
    assert scoring.execution_score({"loss": [float("nan"), 0.3]}, "loss", "best") == (0.3, 1)
    assert math.isnan(scoring.execution_score({}, "loss", "final")[0])


@pytest.mark.parametrize("score", ["last", "last0", "latest", "Final", 3, None])
def test_a_bad_score_names_the_valid_ones(score):
    with pytest.raises(ValueError, match=r"Invalid score .*: final \(the last epoch\), best .* or last<k>"):
        scoring.execution_score({"loss": [1.0]}, "loss", score)


def test_recorded_score_older_searches_best_experiments_final():
    assert scoring.recorded_score({"objective": "loss"}) == "best"
    assert scoring.recorded_score({"objective": "loss", "score": "last3"}) == "last3"
    assert scoring.recorded_score(None) == "final"


# ----------------------------------------------------------------------------------------- ranking
def two_rules_two_lrs(directory, objective):
    """bp and dfa, lr 1e-3 and 1e-2: by loss lr 1e-2 wins, by val_error_rate lr 1e-3 does."""
    for algorithm in ("bp", "dfa"):
        for lr, loss, error in ((1e-3, 0.5, 10.0), (1e-2, 0.3, 20.0)):
            for execution in (0, 1):
                write(directory, f"{algorithm}-lr{lr:g}", execution, point(algorithm, lr=lr),
                      {"loss": [1.0, loss], "val_loss": [1.0, loss], "error_rate": [50.0, error],
                       "val_error_rate": [50.0, error]}, search=search(objective), project=f"p-{objective}")


@pytest.mark.parametrize("objective, lr", [("loss", 1e-2), ("val_loss", 1e-2), ("val_error_rate", 1e-3)])
def test_results_rank_by_the_searchs_own_objective(tmp_path, capsys, objective, lr):
    two_rules_two_lrs(tmp_path, objective)
    frame = results.load(str(tmp_path))
    table = results.best(frame, by="algorithm")
    assert table.attrs["objective"] == objective and objective in table
    assert list(table["lr"]) == [lr, lr]
    assert results.main([str(tmp_path), "--by", "algorithm"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(objective) and f"lr{lr:g}" in out


def test_objective_flag_overrides_the_recorded_one_and_unknown_ones_are_named(tmp_path, capsys):
    two_rules_two_lrs(tmp_path, "loss")
    assert list(results.best(results.load(str(tmp_path)), "val_error_rate", by="algorithm")["lr"]) == [1e-3] * 2
    assert results.main([str(tmp_path), "--objective", "val_error_rate", "--by", "algorithm"]) == 0
    assert "lr0.001" in capsys.readouterr().out
    assert results.main([str(tmp_path), "--objective", "accuracy"]) == 2
    assert capsys.readouterr().err.strip() == ("error: Unknown objective 'accuracy' for these records; valid: loss, "
                                               "val_loss, error_rate, val_error_rate.")


def test_searches_with_different_objectives_ask_for_one(tmp_path, capsys):
    two_rules_two_lrs(tmp_path, "loss")
    two_rules_two_lrs(tmp_path, "val_error_rate")
    assert results.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: These records come from searches with different objectives (loss, val_error_rate); choose one "
        "with --objective (objective= in Python).")
    assert results.main([str(tmp_path), "--objective", "loss"]) == 0


def test_several_by_columns(tmp_path, capsys):
    for arch, error in (("16", 10.0), ("32", 8.0)):
        for algorithm in ("bp", "dfa"):
            write(tmp_path, f"{algorithm}-{arch}", 0, point(algorithm, arch=arch),
                  {"val_error_rate": [50.0, error + (algorithm == "dfa")]}, search=search())
    frame = results.load(str(tmp_path))
    expected = [("bp", "16"), ("bp", "32"), ("dfa", "16"), ("dfa", "32")]
    for by in (["algorithm", "arch"], "algorithm,arch"):
        table = results.best(frame, "val_error_rate", by=by)
        assert list(zip(table["algorithm"], table["arch"])) == expected
    assert results.main([str(tmp_path), "--by", "algorithm,arch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["algorithm", "arch"] and [l.split()[:2] for l in lines[2:6]] == [
        list(e) for e in expected]
    assert results.main([str(tmp_path), "--by", "algorithm,optimiser"]) == 2
    assert "Unknown hparam 'optimiser' for grouping" in capsys.readouterr().err


def test_rule_hparams_that_vary_split_a_rules_group(tmp_path, capsys):
    """A gait sweep over orthogonal_reg (separate projects) compares each value with bp, not only the best."""
    write(tmp_path, "bp", 0, point("bp"), {"val_error_rate": [9.0]}, search=search(), project="p-bp")
    for reg, error in ((0.1, 12.0), (0.01, 11.0)):
        write(tmp_path, f"gait-reg{reg}", 0, point("gait", orthogonal_reg=reg, orthogonal_init=True),
              {"val_error_rate": [error]}, search=search(), project=f"p-gait-orthogonal_reg{reg}")
    table = results.best(results.load(str(tmp_path)), "val_error_rate", by="algorithm")
    assert list(table["algorithm"]) == ["bp", "gait", "gait"]
    assert table.attrs["by"] == ["algorithm", "orthogonal_reg"]  # orthogonal_init does not vary
    assert list(table["orthogonal_reg"])[1:] == [0.01, 0.1] and math.isnan(table["orthogonal_reg"].iloc[0])
    assert list(table["val_error_rate"]) == [9.0, 11.0, 12.0]
    # A common hparam stays a tuning axis: the best lr per group, not one row per lr.
    write(tmp_path, "gait-reg0.1-lr0.01", 0, point("gait", lr=1e-2, orthogonal_reg=0.1, orthogonal_init=True),
          {"val_error_rate": [13.0]}, search=search(), project="p-gait-orthogonal_reg0.1")
    table = results.best(results.load(str(tmp_path)), "val_error_rate", by="algorithm")
    assert list(table["val_error_rate"]) == [9.0, 11.0, 12.0] and set(table["lr"]) == {1e-3}
    assert results.main([str(tmp_path), "--by", "algorithm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["algorithm", "orthogonal_reg"] and lines[3].split()[:2] == ["gait", "0.01"]
    assert "orthogonal_init True (gait)" in " ".join(lines)  # one value wherever it applies


# ------------------------------------------------------------------------------------ experiment records
def test_experiment_records_report_their_final_value(tmp_path, capsys):
    """LagLine bp: a transient minimum of 0.376, a final value of 1.058 (what the run ends with)."""
    for model, errors in (("bp", [1.5, 0.376, 0.9, 1.058]), ("gle", [1.5, 0.6, 0.2, 0.01])):
        write(tmp_path, model, 0, {"model": model, "lr": 1e-6}, {"param_error": errors, "loss": errors},
              project=None)
    table = results.best(results.load(str(tmp_path)), "param_error", by="model")
    assert dict(zip(table["model"], table["param_error"])) == {"bp": 1.058, "gle": 0.01}
    assert set(table["scored_by"]) == {"final"} and list(table["to_epoch"]) == [4, 4]
    assert results.main([str(tmp_path), "--objective", "param_error", "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert "1.058" in out and "0.376" not in out and "final@4/4" in out


def test_old_records_are_scored_by_best_new_ones_by_their_setting_and_score_overrides(tmp_path, capsys):
    history = {"val_loss": [0.9, 0.5, 0.7]}
    for trial, settings in (("old", {}), ("final", {"score": "final"}), ("last2", {"score": "last2"})):
        write(tmp_path, trial, 0, point("bp"), history, search=search("val_loss", **settings), project=trial)
    table = results.trial_scores(results.load(str(tmp_path)), "val_loss").set_index("trial_id")
    assert table.loc["old", "val_loss"] == 0.5 and table.loc["old", "scored_by"] == "best"
    assert table.loc["final", "val_loss"] == 0.7 and table.loc["last2", "val_loss"] == pytest.approx(0.6)
    assert list(table.loc[["old", "final", "last2"], "from_epoch"]) == [2, 3, 2]
    assert results.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best@2/3" in out and "final@3/3" in out and "last2@2–3/3" in out
    overridden = results.trial_scores(results.load(str(tmp_path)), "val_loss", score="final")
    assert set(overridden["val_loss"]) == {0.7} and set(overridden["scored_by"]) == {"final"}
    assert results.main([str(tmp_path), "--score", "worst"]) == 2
    assert capsys.readouterr().err.startswith("error: Invalid score 'worst': final (the last epoch), best")


def test_a_record_with_a_bad_score_setting_or_test_is_named_and_skipped(tmp_path, capsys):
    write(tmp_path, "good", 0, point("bp"), {"loss": [0.5]}, search=search("loss"))
    bad_score = write(tmp_path, "bad-score", 0, point("bp"), {"loss": [0.4]}, search=search("loss", score="median"))
    bad_test = write(tmp_path, "bad-test", 0, point("bp"), {"loss": [0.3]}, search=search("loss"), test=[1, 2])
    errors = []
    frame = results.load(str(tmp_path), errors=errors)
    assert set(frame["trial_id"]) == {"good"} and len(errors) == 2
    assert bad_score in errors[0] and "Invalid score 'median'" in errors[0]
    assert bad_test in errors[1] and "invalid test" in errors[1]


# ----------------------------------------------------------------------------------------- test scores
def test_test_scores_mean_and_std_over_executions_for_the_best_configuration(tmp_path, capsys):
    for execution, test_error in enumerate((12.0, 14.0, None)):
        write(tmp_path, "bp", execution, point("bp"), {"val_error_rate": [50.0, 10.0]}, search=search(),
              test=None if test_error is None else {"loss": 0.4, "error_rate": test_error})
    table = results.best(results.load(str(tmp_path)), "val_error_rate", by="algorithm")
    assert table["test.error_rate"].iloc[0] == 13.0
    assert table["test.error_rate_std"].iloc[0] == pytest.approx(np.std([12.0, 14.0], ddof=1))
    assert table["test.loss"].iloc[0] == pytest.approx(0.4)
    assert results.main([str(tmp_path), "--by", "algorithm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "test error_rate" in lines[1] and "13 ± 1.4" in lines[2]


# ----------------------------------------------------------------------------------------- the console
def test_console_scores_are_rounded_and_the_table_fits_100_columns(tmp_path, capsys):
    long_arch = "conv32k3-conv32k3-pool2-conv64k3-conv64k3-pool2-256"
    for k, algorithm in enumerate(("bp", "fa", "dfa", "drtp", "kp")):
        for lr in (1e-4, 1e-3):
            hparams = point(algorithm, lr=lr, arch=long_arch if k % 2 else "500-500",
                            activation=["tanh", "relu"][k % 2], dropout=0.1 * k)
            for execution in (0, 1):
                write(tmp_path, f"{algorithm}-{long_arch}-lr{lr:g}-0123456789abcdef", execution, hparams,
                      {"val_error_rate": [90.0, 70.80000305175781 + k + execution * 1.234567]}, search=search(),
                      test={"loss": 1.23456789, "error_rate": 71.23456789})
    for by in ([], ["--by", "algorithm"]):
        assert results.main([str(tmp_path), *by]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 100, out
        assert "71.42 ± 0.87" in out and "71.23 ± 0" in out  # the mean of 70.8 and 72.03 ± their std
        assert "conv32k3-con…3-pool2-256" in out  # shortened in the middle
    write(tmp_path / "one", "bp", 0, point("bp"), {"val_error_rate": [70.80000305175781]}, search=search())
    assert results.main([str(tmp_path / "one")]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:3] == ["70.8", "1", "best@1/1"]


def test_python_m_bpfree_results_imports_no_tensorflow(tmp_path):
    """The read side, report included, in a fresh process: tensorflow and keras never reach sys.modules."""
    two_rules_two_lrs(tmp_path / "exp", "loss")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        "atexit.register(lambda: open(%r, 'w').write(' '.join(sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] in ('tensorflow', 'keras', 'keras_tuner', 'tensorflow_datasets')))))\n"
        % str(tmp_path / "heavy.txt"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(probe), os.path.join(REPO, "src")])}
    for extra in ([], ["--report", str(tmp_path / "report.md")],
                  ["--csv", "best.csv", "--latex", "best.tex", "--lr_plot", "lr.png", "--plot", "curves.png"]):
        done = subprocess.run([sys.executable, "-m", "bpfree.results", str(tmp_path / "exp"), "--by", "algorithm",
                               *extra], capture_output=True, text=True, env=env, timeout=300)
        assert (tmp_path / "heavy.txt").read_text() == "", extra
        assert done.returncode == 0 and "dfa" in done.stdout, done.stderr[-3000:]
    assert (tmp_path / "report.md").exists()


def test_import_bpfree_results_loads_and_reports_without_tensorflow(tmp_path):
    """The package itself, in a fresh process: import, load, best, the console table and the report leave
    tensorflow and keras out of sys.modules. `bpfree/__init__.py` is bypassed here (a bare `bpfree`
    package): a plain `import bpfree` registers the saveable Keras classes, so it loads TensorFlow by
    design; `python -m bpfree.results` skips that (the test above)."""
    two_rules_two_lrs(tmp_path / "exp", "loss")
    script = f"""
import sys, types
bpfree = types.ModuleType("bpfree")
bpfree.__path__ = [{os.path.join(REPO, "src", "bpfree")!r}]
sys.modules["bpfree"] = bpfree
import bpfree.results as results
frame = results.load({str(tmp_path / "exp")!r})
table = results.best(frame, by="algorithm")
print(results.tables.console(table))
results.report.write(frame, {str(tmp_path / "report.md")!r})
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "keras_tuner",
                                                                    "tensorflow_datasets")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.path.join(REPO, "src")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout and "dfa" in done.stdout, done.stdout[-3000:]
    assert (tmp_path / "report.md").exists()


def test_the_results_modules_import_one_way():
    """Inside bpfree.results each module imports only those before it: frame, scores, tables, plots,
    statistics, report, cli (so no cycle, and each can be read knowing only its predecessors)."""
    import ast

    order = ["frame", "scores", "tables", "plots", "statistics", "report", "cli"]
    for position, name in enumerate(order):
        with open(os.path.join(REPO, "src", "bpfree", "results", f"{name}.py")) as f:
            tree = ast.parse(f.read())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "bpfree.results":
                used.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bpfree.results."):
                used.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                used.update(a.name.split(".")[2] for a in node.names if a.name.startswith("bpfree.results."))
        assert used <= set(order[:position]), (name, used - set(order[:position]))


# ----------------------------------------------------------------------------------------- the report
def seeds(directory, algorithm, errors, trackers=False, tests=True, project=PROJECT):
    for execution, error in enumerate(errors):
        history = {"val_error_rate": [60.0, error], "val_loss": [2.0, error / 10]}
        if trackers:
            history.update(bp_cosine_1=[0.2, 0.5], weight_alignment_2=[0.1, 0.6])
        write(directory, algorithm, execution, point(algorithm), history, search=search(score="final"),
              test={"loss": error / 9, "error_rate": error + 1} if tests else None, project=project)


def read_report(tmp_path, *args):
    path = tmp_path / "out" / "report.md"
    assert results.main([str(tmp_path / "exp"), "--report", str(path), *args]) == 0
    return path.read_text()


def test_report_best_per_rule_curves_alignment_and_tests_against_bp(tmp_path, capsys):
    seeds(tmp_path / "exp", "bp", [10.0, 11.0, 12.0])
    seeds(tmp_path / "exp", "dfa", [14.0, 15.0, 16.0], trackers=True)
    text = read_report(tmp_path)
    assert "| algorithm | val_error_rate | n | score | test loss | test error_rate |" in text
    assert "| bp | 11 ± 1 | 3 | final@2/2 | 1.222 ± 0.11 | 12 ± 1 |" in text
    assert "| dfa | 15 ± 1 | 3 | final@2/2 |" in text
    for figure in ("report_curves.png", "report_bp_cosine.png", "report_weight_alignment.png"):
        assert f"]({figure})" in text
        assert (tmp_path / "out" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "paired t" in text and "Wilcoxon signed-rank (exact p)" in text and "Mann–Whitney" not in text
    # Paired by seed, dfa minus bp is +4 on every seed: the t-test is undefined (no variance), the exact
    # Wilcoxon p is its floor with 3 pairs, 2 / 2^3 (ties enumerated), and the validation score is not tested.
    assert ("| dfa | test error_rate | 3 | +4 | undefined: every difference is the same | — | W = 0, p = 0.25 "
            "(ties: exact over all 2^3 signs) | 0.25 |") in text
    assert "| dfa | test loss | 3 | +0.4444 |" in text and "val_error_rate (final) |" not in text
    assert "(here 3 nonzero differences: 0.25)" in text
    assert "the same executions whose validation scores chose each configuration" in text


def test_report_without_bp_tests_or_trackers_and_with_one_execution_says_so(tmp_path):
    seeds(tmp_path / "exp", "dfa", [14.0, 15.0], tests=False)
    seeds(tmp_path / "exp", "fa", [13.0], tests=False)
    text = read_report(tmp_path)
    assert "No bp configuration in these records: nothing to compare against." in text
    assert "No test scores in these records" in text and "No tracker metrics in these records" in text
    assert "| dfa | val_error_rate | n | score |" not in text and "| fa | 13 | 1 | final@2/2 |" in text
    seeds(tmp_path / "exp", "bp", [10.0, 11.0], tests=False)
    text = read_report(tmp_path)
    # No test scores, and nothing was chosen (one configuration per rule): the objective itself is compared.
    assert "no configuration was chosen among others (each group ran one)" in text
    assert ("| fa | val_error_rate (final) | 1 (unpaired: 0 here, 1 bp) | +3 | not tested: 1 pair (needs ≥ 2) | — "
            "| W = 0, p = 1 | 1 |") in text  # seed 0 pairs; bp's seed 1 has no partner
    assert "| dfa | val_error_rate (final) | 2 | +4 | undefined: every difference is the same | — | W = 0, p = 0.5" in text


def test_report_of_experiment_records_groups_by_model(tmp_path):
    for model, errors in (("bp", [1.5, 0.376, 1.058]), ("gle", [1.5, 0.6, 0.01])):
        for seed in (0, 1):
            write(tmp_path / "exp", model, seed, {"model": model}, {"loss": errors}, project=None)
    text = read_report(tmp_path)
    assert "## Best configuration per model" in text and "| bp | 1.058 ± 0 | 2 | final@3/3 |" in text
    assert "| gle | loss (final) | 2 | -1.048 | undefined: every difference is the same | — | W = 0, p = 0.5" in text


def test_report_path_must_be_markdown(tmp_path, capsys):
    seeds(tmp_path / "exp", "bp", [10.0])
    assert results.main([str(tmp_path / "exp"), "--report", str(tmp_path / "report.html")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: Invalid --report")
    assert not (tmp_path / "report.html").exists()


def test_the_report_reads_the_alignment_metrics_the_trackers_write():
    import bpfree
    from bpfree import trackers
    from bpfree.results import plots

    model = bpfree.build_model("dfa", "8-8", 6, 3, seed=0, trackers=("bp_cosine", "weight_alignment", "weights"))
    names = trackers.metric_names(model)
    found = {n for n in names if plots.ALIGNMENT_METRIC.fullmatch(n)}
    assert found == {n for n in names if n.startswith(("bp_cosine_", "weight_alignment_"))} and len(found) >= 3


# ------------------------------------------------------------------------- rule hparams in project names
GAIT = {"algorithm": ["gait"], "arch": ["64"], "activation": ["lrelu"], "batchnorm": [False], "bw_init": ["ortho"],
        "lr": [1e-4], "dropout": [0.0]}


def test_project_name_carries_a_fixed_rule_hparam_other_than_its_default():
    name = SearchSpace.create(GAIT, {"algorithm": "gait"}).project_name("digits", "classification", "loss")
    assert name == "digits-classification-loss-gait"  # unchanged for the defaults
    for fixed in ({"gait.orthogonal_reg": 0.0}, {"gait.orthogonal_init": True}):
        space = SearchSpace.create(GAIT, {"algorithm": "gait", **fixed})
        assert space.project_name("digits", "classification", "loss") == name
    names = {SearchSpace.create(GAIT, {"algorithm": "gait", "gait.orthogonal_reg": reg}).project_name(
        "digits", "classification", "loss") for reg in (0.1, 0.01)}
    assert names == {f"{name}-orthogonal_reg0.1", f"{name}-orthogonal_reg0.01"}
    several = SearchSpace.create({**GAIT, "algorithm": ["gait", "tp"], "tp": {"orthogonal_reg": [1000.0]},
                                  "bp_inv": {"orthogonal_reg": [5.0]}})  # bp_inv is not in this space
    assert several.project_name("digits", "classification", "loss") == (
        "digits-classification-loss-tp.orthogonal_reg1000")
    swept = SearchSpace.create({**GAIT, "gait": {"orthogonal_reg": [0.1, 0.01]}})
    assert swept.project_name("digits", "classification", "loss") == "digits-classification-loss"


def test_a_changed_space_is_refused_naming_the_hparam_and_how(tmp_path):
    from bpfree.tuning import search as search_lib

    config = SearchConfig(dataset="digits", objective="loss")
    before = SearchSpace.create({**GAIT, "gait": {"orthogonal_reg": [0.1, 0.2]}})
    after = SearchSpace.create({**GAIT, "lr": [1e-4, 1e-3], "gait": {"orthogonal_reg": [0.1, 0.3]}})
    search_lib._write_or_check_config(str(tmp_path), config, before)
    search_lib._write_or_check_config(str(tmp_path), config, before)  # the same: accepted
    with pytest.raises(search_lib.ExperimentMismatch) as caught:
        search_lib._write_or_check_config(str(tmp_path), SearchConfig(dataset="digits", objective="loss",
                                                                      num_epochs=3), after)
    message = str(caught.value)
    assert ("(num_epochs 10 → 3, space.gait.orthogonal_reg [0.1, 0.2] → [0.1, 0.3], space.lr [0.0001] → "
            "[0.0001, 0.001] differ)") in message, message
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["space"]["gait.orthogonal_reg"] == [0.1, 0.2]  # not overwritten


def test_a_search_recorded_before_the_score_and_protocol_settings_resumes_as_it_was_run(tmp_path):
    """Records and config.json written before `score` and `protocol` existed were scored by their best
    epoch and validated as their validation_frac says: the ancestor's protocol resumes them; the new
    defaults are refused, naming each setting and how it changed."""
    from bpfree.tuning import search as search_lib

    ancestor = SearchConfig(dataset="digits", objective="loss", protocol="ancestor")
    old = {k: v for k, v in ancestor.to_json().items() if k not in ("score", "protocol")}
    write(tmp_path, "bp", 0, point("bp"), {"loss": [0.5]}, search=old, project=None)
    search_lib._write_or_check_config(str(tmp_path), ancestor, SearchSpace.create(GAIT))
    with open(tmp_path / "config.json") as f:
        payload = json.load(f)
    payload["search"] = old
    with open(tmp_path / "config.json", "w") as f:
        json.dump(payload, f)
    for check in (lambda c: search_lib.check_record_settings(str(tmp_path), c),
                  lambda c: search_lib._write_or_check_config(str(tmp_path), c, SearchSpace.create(GAIT))):
        check(ancestor)  # what it was run with: the same search
        with pytest.raises(search_lib.ExperimentMismatch) as caught:
            check(SearchConfig(dataset="digits", objective="loss"))
        for change in ("protocol 'ancestor' → 'holdout'", "score 'best' → 'final'", "validation_frac 0.0 → 0.1"):
            assert change in str(caught.value), str(caught.value)


def test_report_over_a_real_tiny_search(tmp_path):
    """End to end: a search's own records (objective, trackers) make the report, alignment figures included."""
    from bpfree.tuning import run_search

    space = {"algorithm": ["bp", "dfa"], "arch": ["16"], "activation": ["tanh"], "batchnorm": [False],
             "bw_init": ["ortho"], "lr": [1e-2], "dropout": [0.0]}
    config = SearchConfig(dataset="digits", objective="val_loss", num_epochs=2, executions_per_trial=2,
                          trackers=("bp_cosine", "weight_alignment"), use_xla=False)
    run_search(str(tmp_path / "exp"), config, SearchSpace.create(space), log=lambda *a: None)
    text = read_report(tmp_path, "--by", "algorithm")
    assert "Objective **val_loss**" in text and "| algorithm | val_loss | n | score |" in text
    assert "| dfa | test loss | 2 | " in text and "| dfa | test error_rate | 2 | " in text
    assert "| dfa | val_loss (" not in text  # the score that chose the configuration is not tested
    for figure in ("report_curves.png", "report_bp_cosine.png", "report_weight_alignment.png"):
        assert f"]({figure})" in text and (tmp_path / "out" / figure).stat().st_size > 1000


# ------------------------------------------------------------------- exports and the lr curve (issue 24)
LRS = (1e-3, 1e-2, 1e-1)
# val_error_rate of the final epoch per (rule, lr): two executions each; bp also at a second arch (worse
# at 1e-3 and 1e-1, better at 1e-2), so the curve takes the best configuration at each lr.
FINAL = {("bp", "16"): {1e-3: (30.0, 34.0), 1e-2: (20.0, 24.0), 1e-1: (50.0, 70.0)},
         ("bp", "32"): {1e-3: (40.0, 44.0), 1e-2: (12.0, 14.0), 1e-1: (90.0, 90.0)},
         ("dfa", "16"): {1e-3: (60.0, 64.0), 1e-2: (45.0, 47.0), 1e-1: (40.0, 42.0)}}


def lr_grid(directory):
    for (algorithm, arch), by_lr in FINAL.items():
        for lr, errors in by_lr.items():
            for execution, error in enumerate(errors):
                write(directory, f"{algorithm}-{arch}-lr{lr:g}", execution, point(algorithm, arch=arch, lr=lr),
                      {"val_error_rate": [80.0, error], "val_loss": [2.0, error / 10]}, search=search(score="final"),
                      test={"error_rate": error + 1.0})
    return str(directory)


def test_output_files_go_into_the_experiment_directory_unless_a_path_is_given(tmp_path, monkeypatch, capsys):
    exp = lr_grid(tmp_path / "exp")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    names = {"--report": "report.md", "--csv": "best.csv", "--latex": "best.tex", "--lr_plot": "lr.png",
             "--plot": "curves.png"}
    assert results.main([exp, "--by", "algorithm", *[a for pair in names.items() for a in pair]]) == 0
    out = capsys.readouterr().out
    for name in names.values():
        assert os.path.getsize(os.path.join(exp, name)) > 0 and not (elsewhere / name).exists(), name
    assert f"report: {os.path.join(exp, 'report.md')}" in out
    assert os.path.exists(os.path.join(exp, "report_curves.png")) and os.path.exists(os.path.join(exp, "report_lr.png"))
    # a path is honoured: relative to the working directory, or absolute
    assert results.main([exp, "--report", "./here.md", "--csv", str(tmp_path / "there.csv")]) == 0
    assert (elsewhere / "here.md").exists() and (tmp_path / "there.csv").exists()
    assert not os.path.exists(os.path.join(exp, "here.md"))


def test_csv_export_reads_back_as_the_table(tmp_path):
    import pandas as pd

    exp = lr_grid(tmp_path / "exp")
    assert results.main([exp, "--by", "algorithm", "--csv", "best.csv"]) == 0
    table = results.best(results.load(exp), by="algorithm")
    back = pd.read_csv(os.path.join(exp, "best.csv"), dtype={"arch": str})  # "16" is an arch, not a number
    assert list(back.columns) == list(table.columns)
    pd.testing.assert_frame_equal(back, table.reset_index(drop=True), check_dtype=False, check_exact=True)
    assert list(back["val_error_rate"]) == [13.0, 41.0] and list(back["lr"]) == [1e-2, 1e-1]


def test_latex_export_holds_the_printed_table(tmp_path):
    exp = lr_grid(tmp_path / "exp")
    assert results.main([exp, "--by", "algorithm", "--latex", "best.tex"]) == 0
    text = open(os.path.join(exp, "best.tex"), encoding="utf-8").read()
    assert "\\begin{tabular}{" in text and text.rstrip().endswith("\\end{tabular}")
    body = text[text.index("\\toprule") + len("\\toprule"):text.index("\\bottomrule")].strip().splitlines()
    unescape = {escaped: char for char, escaped in results.tables._LATEX.items()}

    def cells(line):
        assert line.endswith(" \\\\"), line
        row = []
        for cell in line[:-3].split(" & "):
            for escaped in sorted(unescape, key=len, reverse=True):
                cell = cell.replace(escaped, unescape[escaped])
            row.append(cell)
        return row

    rows, shared = results.tables.summary(results.best(results.load(exp), by="algorithm"))
    rows = rows.drop(columns=["trial_id"])  # the CSV's: a paper's table has no trial ids
    assert body[1] == "\\midrule"
    assert cells(body[0]) == list(rows.columns) and body[0].startswith("algorithm & val\\_error\\_rate & n")
    assert [cells(line) for line in body[2:]] == [list(r) for r in rows.itertuples(index=False)]
    assert "13 $\\pm$ 1.4" in text  # bp's 12 and 14 at lr 1e-2 (arch 32)
    assert "% every row: activation tanh" in text and "% val_error_rate in %, lower is better" in text
    assert "bp-32-lr0.01" not in text and "project" not in text


def test_the_lr_curve_takes_the_best_configuration_at_each_lr_with_its_spread(tmp_path):
    curves = results.lr_curves(results.load(lr_grid(tmp_path / "exp")))
    assert curves.attrs["objective"] == "val_error_rate" and curves.attrs["by"] == ["algorithm"]
    bp = curves[curves["algorithm"] == "bp"]
    assert list(bp["lr"]) == list(LRS) and list(bp["mean"]) == [32.0, 13.0, 60.0]  # arch 16, 32, 16
    assert list(bp["min"]) == [30.0, 12.0, 50.0] and list(bp["max"]) == [34.0, 14.0, 70.0]
    assert list(bp["trial_id"]) == ["bp-16-lr0.001", "bp-32-lr0.01", "bp-16-lr0.1"]
    assert list(curves[curves["algorithm"] == "dfa"]["mean"]) == [62.0, 46.0, 41.0]
    assert results.plots.lr_at_the_edge(curves) == {"dfa": "largest"}  # bp's best is inside its grid


def test_the_lr_plot_has_one_line_per_rule_on_a_log_axis(tmp_path, monkeypatch):
    frame = results.load(lr_grid(tmp_path / "exp"))
    seen = {}
    save = results.plots.save_figure

    def spy(fig, path):
        ax = fig.axes[0]
        seen["xscale"] = ax.get_xscale()
        seen["lines"] = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                         for line in ax.get_lines() if not line.get_label().startswith("_")}
        seen["bands"] = len(ax.collections)
        return save(fig, path)

    monkeypatch.setattr(results.plots, "save_figure", spy)
    path = results.plot_lr(frame, path=str(tmp_path / "lr.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert seen["xscale"] == "log" and seen["bands"] == 2
    assert seen["lines"] == {"bp": (list(LRS), [32.0, 13.0, 60.0]), "dfa": (list(LRS), [62.0, 46.0, 41.0])}


def test_the_report_shows_the_lr_curve_and_names_a_best_lr_at_the_grids_edge(tmp_path):
    lr_grid(tmp_path / "exp")
    text = read_report(tmp_path)
    assert "## Learning rate" in text and "![objective against the learning rate](report_lr.png)" in text
    assert "Best at an end of the grid (a better learning rate may lie beyond it): dfa (largest lr)." in text
    assert (tmp_path / "out" / "report_lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_lr_in_the_records_is_said_for_the_lr_plot(tmp_path, capsys):
    for seed in (0, 1):
        write(tmp_path / "exp", "bp", seed, {"model": "bp"}, {"loss": [1.0, 0.5]}, project=None)
    assert results.main([str(tmp_path / "exp"), "--lr_plot", "lr.png"]) == 2
    assert capsys.readouterr().err == "error: No lr hparam in these records: no curve of the objective against the " \
                                      "learning rate.\n"


def test_confirmation_executions_take_no_part_in_the_lr_curve(tmp_path):
    exp = lr_grid(tmp_path / "exp")
    record = records.ExecutionRecord(os.path.join(exp, PROJECT), "bp-16-lr0.001", 2, point("bp", lr=1e-3), seed=7,
                                     search=search(score="final"))
    record.data["history"] = {"val_error_rate": [80.0, 0.0], "val_loss": [2.0, 0.0]}
    record.data["confirmation"] = True  # a re-run after the selection, far better: would move bp's curve at 1e-3
    record.finish("completed")
    curves = results.lr_curves(results.load(exp))
    assert list(curves[curves["algorithm"] == "bp"]["mean"]) == [32.0, 13.0, 60.0]
