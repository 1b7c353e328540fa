"""The read side of the records: a pandas DataFrame, the best hparams, tables, learning curves, a report.

    from bpfree import results
    df = results.load("data/quickstart")          # one row per (trial, execution, epoch)
    results.best(df, by="algorithm")               # the best trial per algorithm, by the search's objective
    results.best(df, "val_loss", by=["algorithm", "arch"], score="last3")
    results.plot_curves(df, "val_error_rate", by="algorithm", path="curves.png")
    results.plot_lr(df, path="lr.png")             # the objective against the learning rate, a line per rule
    results.report.write(df, "report.md")          # best per rule, curves, lr, alignment, tests against bp
    (models,) = results.best_models("data/quickstart")  # the best trial's final models (--save_models)

    python -m bpfree.results EXPERIMENT_DIR [--by algorithm,arch] [--objective val_loss] [--score best]
                             [--plot curves.png] [--report report.md] [--csv best.csv] [--latex best.tex]
                             [--lr_plot lr.png]

One concept a module, each importing only those before it: `frame` (`load`: the records as a DataFrame,
and its columns), `scores` (execution and trial scores, `best`; how a score is chosen is in its docstring),
`tables` (how a best table is shown), `plots`, `statistics` (the tests against bp), `report`, `cli`,
`models` (the best trials' saved models: the one place that loads Keras, when called).
Test-split metrics (``record["test"]``) are columns ``test.<metric>``. Imports no TensorFlow: it reads
`bpfree.records`, not models (`python -m bpfree.results` skips the model registration in
`bpfree/__init__.py` for that reason).
"""

from bpfree.results import cli, frame, models, plots, report, scores, statistics, tables  # noqa: F401 - submodules
from bpfree.results.cli import CONSOLE_WIDTH, main
from bpfree.results.models import best_model_paths, best_models, load_model
from bpfree.results.frame import (BASE_COLUMNS, TEST_PREFIX, hparam_columns, load, metric_columns, rule_column,
                                  test_columns)
from bpfree.results.plots import curves, lr_curves, plot_curves, plot_lr, save_figure
from bpfree.results.scores import (DEFAULT_OBJECTIVES, best, execution_scores, parse_by, recorded_objective,
                                   rule_hparams_that_vary, trial_scores)
from bpfree.results.tables import group_label

__all__ = ["load", "best", "execution_scores", "trial_scores", "recorded_objective", "hparam_columns",
           "metric_columns", "test_columns", "rule_column", "parse_by", "rule_hparams_that_vary", "group_label",
           "curves", "plot_curves", "lr_curves", "plot_lr", "save_figure", "main", "BASE_COLUMNS", "TEST_PREFIX",
           "DEFAULT_OBJECTIVES", "CONSOLE_WIDTH", "report", "best_models", "best_model_paths", "load_model"]
