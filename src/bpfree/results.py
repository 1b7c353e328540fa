"""The read side of the records: a pandas DataFrame, the best hparams, learning curves, a report.

    from bpfree import results
    df = results.load("data/quickstart")          # one row per (trial, execution, epoch)
    results.best(df, by="algorithm")               # the best trial per algorithm, by the search's objective
    results.best(df, "val_loss", by=["algorithm", "arch"], score="last3")
    results.plot_curves(df, "val_error_rate", by="algorithm", path="curves.png")

    python -m bpfree.results EXPERIMENT_DIR [--by algorithm,arch] [--objective val_loss] [--score best]
                             [--plot curves.png] [--report report.md]

Every objective is minimised. An execution's score is its objective at the epochs its search's ``score``
setting names (`bpfree.scoring`: "final", "best" or "last<k>"; "best" for searches recorded before that
setting; "final" for experiment records, which have no search); a trial's score is the mean (± the sample
std) over its executions whose score is finite. The objective is the one each search was run with, unless
given. Grouping by algorithm also groups by each rule hparam that varies among a rule's trials (gait with
orthogonal_reg 0.1 and 0.01 are two rows). Test-split metrics (``record["test"]``) are columns
``test.<metric>``. Imports no TensorFlow.
"""

import argparse
import logging
import math
import os
import sys

import numpy as np
import pandas as pd

from bpfree import checks, io, records, scoring, tables
from bpfree.hparam_names import HPARAMS

BASE_COLUMNS = ("project", "trial_id", "execution", "epoch", "status", "seed", "wall_time", "objective", "scored_by")
TEST_PREFIX = "test."
DEFAULT_OBJECTIVES = ("val_error_rate", "val_loss", "error_rate", "loss")
CONSOLE_WIDTH = 100


def load(experiment_dir, errors=None):
    """Every execution record under `experiment_dir` as one DataFrame, one row per epoch.

    Columns: project (the sub-directory of the search), trial_id, execution, epoch (0-based), status, seed,
    wall_time, objective (the search's; None for experiment records), scored_by (`scoring.recorded_score`),
    test.<metric> (the execution's test-split metrics, where recorded), every hparam by its long name, every
    metric. A corrupt record file is skipped with a warning naming it (and appended to `errors` when a list
    is given); the rest still loads.
    """
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"No experiment directory {experiment_dir!r}.")
    rows = []
    hparams, metrics, tests = {}, {}, {}
    for path in records.iter_record_paths(experiment_dir):
        try:
            data = _read(path)
        except records.RecordError as e:
            logging.getLogger("bpfree").warning("%s", e)
            if errors is not None:
                errors.append(str(e))
            continue
        project = os.path.relpath(os.path.dirname(os.path.dirname(os.path.dirname(path))), experiment_dir)
        search = data.get("search")
        test = {f"{TEST_PREFIX}{k}": (np.nan if v is None else v) for k, v in (data.get("test") or {}).items()}
        base = {"project": project, "trial_id": data["trial_id"], "execution": data["execution"],
                "status": data["status"], "seed": data.get("seed"), "wall_time": data.get("wall_time"),
                "objective": (search or {}).get("objective"), "scored_by": scoring.recorded_score(search),
                **test, **data["hparams"]}
        history = data["history"]
        hparams.update(dict.fromkeys(data["hparams"]))
        metrics.update(dict.fromkeys(history))
        tests.update(dict.fromkeys(test))
        epochs = max((len(v) for v in history.values()), default=0)
        if not epochs:
            rows.append({**base, "epoch": np.nan})
        for epoch in range(epochs):
            rows.append({**base, "epoch": epoch,
                         **{k: (v[epoch] if epoch < len(v) and v[epoch] is not None else np.nan)
                            for k, v in history.items()}})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    ordered = [c for c in BASE_COLUMNS if c in frame] + list(tests) + list(hparams) + list(metrics)
    frame = frame[ordered].sort_values(["project", "trial_id", "execution", "epoch"], ignore_index=True)
    frame.attrs["hparams"], frame.attrs["metrics"], frame.attrs["tests"] = list(hparams), list(metrics), list(tests)
    return frame


def _read(path):
    """`records.read`, and the fields only this side reads: search.score and test."""
    data = records.read(path)
    try:
        scoring.recorded_score(data.get("search"))
    except ValueError as e:
        raise records.RecordError(f"Corrupted record file {path}: {e}") from None
    test = data.get("test")
    if test is not None and not (isinstance(test, dict) and all(
            v is None or checks.is_number(v) for v in test.values())):
        raise records.RecordError(f"Corrupted record file {path}: invalid test (a {{metric: number}} object).")
    return data


def hparam_columns(frame):
    """The hparam columns of a `load` frame (recorded in its attrs; the known names otherwise)."""
    if "hparams" in frame.attrs:
        return [c for c in frame.attrs["hparams"] if c in frame]
    return [c for c in HPARAMS if c in frame]


def metric_columns(frame):
    """The metric columns of a `load` frame: what an objective may be."""
    if "metrics" in frame.attrs:
        return [c for c in frame.attrs["metrics"] if c in frame]
    others = set(BASE_COLUMNS) | set(hparam_columns(frame))
    return [c for c in frame.columns if c not in others and not str(c).startswith(TEST_PREFIX)]


def test_columns(frame):
    """The test.<metric> columns of a frame."""
    return [c for c in frame.columns if str(c).startswith(TEST_PREFIX)]


def recorded_objective(frame):
    """The objective the records' searches were run with; for records without one (experiments, older
    records), the first logged of val_error_rate, val_loss, error_rate, loss. A ValueError when the
    searches used several (then name one)."""
    recorded = sorted(set(frame["objective"].dropna())) if "objective" in frame else []
    if len(recorded) > 1:
        raise ValueError(f"These records come from searches with different objectives ({', '.join(recorded)}); "
                         "choose one with --objective (objective= in Python).")
    if recorded:
        return recorded[0]
    for name in DEFAULT_OBJECTIVES:
        if name in frame and frame[name].notna().any():
            return name
    raise ValueError(f"No objective metric in the records (none of {', '.join(DEFAULT_OBJECTIVES)}); "
                     "choose one with --objective.")


def _check_objective(frame, objective):
    objective = recorded_objective(frame) if objective is None else objective
    if objective not in metric_columns(frame):
        raise checks.unknown("objective", objective, metric_columns(frame), owner="these records")
    return objective


def execution_scores(frame, objective=None, score=None):
    """One row per execution: project, trial_id, execution, seed, status, score (its objective by its score
    rule), scored_by, from_epoch and to_epoch (the 1-based epochs the score comes from; NaN where none),
    epochs (run), test.<metric>, and its hparams. `score` overrides every record's own rule."""
    objective = _check_objective(frame, objective)
    if score is not None:
        scoring.check_score(score)
    keys = ["project", "trial_id", "execution"]
    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        rule = score or (group["scored_by"].iloc[0] if "scored_by" in group else scoring.BEFORE_THE_SETTING)
        values = group.sort_values("epoch")[objective].tolist()
        epochs = int(group["epoch"].notna().sum())
        value, epoch = scoring.execution_score({objective: values}, objective, rule)
        used = scoring.epochs_used(rule, epoch, epochs) if math.isfinite(value) else None
        rows.append({**dict(zip(keys, key)), "score": value, "scored_by": rule,
                     "from_epoch": used[0] if used else np.nan, "to_epoch": used[1] if used else np.nan,
                     "epochs": epochs})
    out = pd.DataFrame(rows, columns=keys + ["score", "scored_by", "from_epoch", "to_epoch", "epochs"])
    first = frame.drop_duplicates(keys).set_index(keys)
    extra = [c for c in ["seed", "status", *test_columns(frame), *hparam_columns(frame)] if c in first]
    out = out.join(first[extra], on=keys)
    out.attrs["objective"] = objective
    return out


def trial_scores(frame, objective=None, score=None):
    """One row per trial: the mean and std of its executions' finite scores (columns `objective` and
    `objective`_std), executions (how many are finite) of runs, scored_by, from_epoch / to_epoch (the
    1-based epochs its scores come from, over its executions), epochs, test.<metric> mean and _std, hparams."""
    per = execution_scores(frame, objective, score)
    objective = per.attrs["objective"]
    keys = ["project", "trial_id"]
    grouped = per.groupby(keys, sort=True)
    trials = grouped["score"].agg(**{objective: "mean", f"{objective}_std": "std", "executions": "count"})
    trials["runs"] = grouped.size()
    trials["scored_by"] = grouped["scored_by"].first()
    trials["from_epoch"], trials["to_epoch"] = grouped["from_epoch"].min(), grouped["to_epoch"].max()
    trials["epochs"] = grouped["epochs"].max()
    for column in test_columns(per):
        trials[column], trials[f"{column}_std"] = grouped[column].mean(), grouped[column].std()
    hparams = [c for c in hparam_columns(frame) if c in per]
    if hparams:
        trials = trials.join(grouped[hparams].first())
    trials = trials.reset_index()
    trials.attrs["objective"] = objective
    return trials


def parse_by(by):
    """`by` as a list of column names: None, a name, "algorithm,arch" or a list."""
    if by is None:
        return []
    if isinstance(by, str):
        return [name.strip() for name in by.split(",") if name.strip()]
    return list(by)


def rule_hparams_that_vary(trials, by, hparams):
    """The rules' own hparams among `hparams` (those not common to all: `bpfree.hparam_names.HPARAMS`) whose
    value differs among the trials of one `by` group; only when grouping by algorithm (they are the rule's)."""
    if "algorithm" not in by:
        return []
    own = [c for c in hparams if c in trials and c not in HPARAMS and c not in by]
    return [c for c in own if (trials.groupby(by, dropna=False)[c].nunique(dropna=False) > 1).any()]


def best(frame, objective=None, by=None, score=None):
    """The best trial (lowest score) overall, or per group of `by` (a column, "a,b" or a list), all sorted.

    `objective` defaults to the search's own (`recorded_objective`); `score` to each record's rule. The
    result's attrs hold "objective", "score" and "by" (the grouping columns, rule hparams included)."""
    trials = trial_scores(frame, objective, score)
    objective = trials.attrs["objective"]
    trials = trials.dropna(subset=[objective]).sort_values(objective, kind="stable")
    by = parse_by(by)
    for column in by:
        if column not in hparam_columns(frame):
            raise checks.unknown("hparam", column, hparam_columns(frame), owner="grouping")
    if by:
        by = by + rule_hparams_that_vary(trials, by, hparam_columns(frame))
        trials = trials.groupby(by, sort=False, dropna=False).head(1).sort_values(by, kind="stable")
        trials = trials[by + [c for c in trials.columns if c not in by]]
    table = trials.reset_index(drop=True)
    table.attrs.update(objective=objective, score=score, by=by, hparams=hparam_columns(frame))
    return table


def rule_column(frame):
    """The column naming the rule of each record: "algorithm" (searches), "model" (experiments), else None."""
    return next((c for c in ("algorithm", "model") if c in hparam_columns(frame)), None)


def group_label(row, by):
    """"dfa", "dfa · arch 500-500" or "gait · orthogonal_reg 0.1": a best row's group, for legends."""
    if not by:
        return str(row["trial_id"])
    return " · ".join([tables.cell(row[by[0]])] + [f"{c} {tables.cell(row[c])}" for c in by[1:]])


def curves(frame, metric, trial_ids, project=None):
    """{trial_id: DataFrame(epoch, mean, std, executions)} of `metric` over a trial's executions."""
    out = {}
    for tid in trial_ids:
        rows = frame[(frame["trial_id"] == tid) & ((frame["project"] == project) if project is not None else True)]
        grouped = rows.groupby("epoch")[metric]
        out[tid] = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std().fillna(0.0),
                                 "executions": grouped.count()}).reset_index()
    return out


def plot_curves(frame, metric, by="algorithm", path="curves.png", objective=None, score=None, table=None):
    """Mean ± std learning curves of `metric` for the best trial of every group (chosen by `objective`,
    default `metric`; or the rows of `table`, a `best` result), saved as PNG (or the format of the path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = best(frame, objective or metric, by=by, score=score) if table is None else table
    by = chosen.attrs.get("by", parse_by(by))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, row in chosen.iterrows():
        curve = curves(frame, metric, [row["trial_id"]], row["project"])[row["trial_id"]]
        ax.plot(curve["epoch"] + 1, curve["mean"], label=f"{group_label(row, by)} ({row['trial_id']})" if by
                else row["trial_id"])
        ax.fill_between(curve["epoch"] + 1, curve["mean"] - curve["std"], curve["mean"] + curve["std"], alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"best trial per {', '.join(by)}: mean ± std over executions" if by else "best trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path):
    """Writes a matplotlib figure atomically (format from the extension) and closes it."""
    import matplotlib.pyplot as plt

    try:  # the format follows path's extension, as savefig(path) would infer it
        io.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120), os.path.splitext(path)[1])
    finally:
        plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bpfree.results", description="Best hparams, curves, a report.")
    parser.add_argument("experiment_dir")
    parser.add_argument("--by", default=None, help="group by these hparams, comma-separated (e.g. algorithm,arch)")
    parser.add_argument("--objective", default=None, help="metric to minimise (default: the search's objective)")
    parser.add_argument("--score", default=None, help="final | best | last<k> (default: each search's setting)")
    parser.add_argument("--plot", default=None, help="write mean ± std curves of the best trial per group here (PNG)")
    parser.add_argument("--report", default=None, help="write a Markdown comparison report here (figures beside it)")
    args = parser.parse_args(argv)
    errors = []
    try:
        frame = load(args.experiment_dir, errors=errors)
        if frame.empty:
            raise ValueError(f"No records under {args.experiment_dir!r}.")
        if args.report:
            from bpfree import report

            report.check_path(args.report)
        table = best(frame, args.objective, by=args.by, score=args.score)
        print(tables.console(table, width=CONSOLE_WIDTH))
        if args.plot:
            plot_curves(frame, table.attrs["objective"], by=args.by or rule_column(frame), path=args.plot,
                        score=args.score)
            print(f"curves: {args.plot}")
        if args.report:
            report.write(frame, args.report, objective=args.objective, by=args.by, score=args.score,
                         source=args.experiment_dir)
            print(f"report: {args.report}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
