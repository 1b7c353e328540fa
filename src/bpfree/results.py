"""The read side of the records: a pandas DataFrame, the best hparams, learning curves.

    from bpfree import results
    df = results.load("data/quickstart")          # one row per (trial, execution, epoch)
    results.best(df, "val_error_rate", by="algorithm")   # best lr (and the rest) per algorithm
    results.plot_curves(df, "val_error_rate", by="algorithm", path="curves.png")

    python -m bpfree.results EXPERIMENT_DIR [--by algorithm] [--objective val_error_rate] [--plot curves.png]

An execution's score is its best epoch's objective (as keras-tuner scores trials); a trial's score is
the mean over its executions that finished with a finite objective.
"""

import argparse
import logging
import os
import sys

import numpy as np
import pandas as pd

from bpfree import checks, io, records

BASE_COLUMNS = ("project", "trial_id", "execution", "epoch", "status", "seed", "wall_time")


def load(experiment_dir, errors=None):
    """Every execution record under `experiment_dir` as one DataFrame.

    Columns: project (the sub-directory of the search), trial_id, execution, epoch, status, seed,
    wall_time, every hparam by its long name, every metric. A corrupt record file is skipped with a
    warning naming it (and appended to `errors` when a list is given); the rest still loads.
    """
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"No experiment directory {experiment_dir!r}.")
    rows = []
    hparams, metrics = {}, {}
    for path in records.iter_record_paths(experiment_dir):
        try:
            data = records.read(path)
        except records.RecordError as e:
            logging.getLogger("bpfree").warning("%s", e)
            if errors is not None:
                errors.append(str(e))
            continue
        project = os.path.relpath(os.path.dirname(os.path.dirname(os.path.dirname(path))), experiment_dir)
        base = {"project": project, "trial_id": data["trial_id"], "execution": data["execution"],
                "status": data["status"], "seed": data.get("seed"), "wall_time": data.get("wall_time"),
                **data["hparams"]}
        history = data["history"]
        hparams.update(dict.fromkeys(data["hparams"]))
        metrics.update(dict.fromkeys(history))
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
    ordered = [c for c in BASE_COLUMNS if c in frame] + list(hparams) + list(metrics)
    frame = frame[ordered].sort_values(["project", "trial_id", "execution", "epoch"], ignore_index=True)
    frame.attrs["hparams"], frame.attrs["metrics"] = list(hparams), list(metrics)
    return frame


def hparam_columns(frame):
    """The hparam columns of a `load` frame (recorded in its attrs; the known names otherwise)."""
    if "hparams" in frame.attrs:
        return [c for c in frame.attrs["hparams"] if c in frame]
    from bpfree.tuning.space import HPARAMS

    return [c for c in HPARAMS if c in frame]


def trial_scores(frame, objective):
    """One row per trial: mean ± std of the executions' best-epoch objective, and its hparams."""
    if objective not in frame:
        logged = [c for c in frame.columns if c not in BASE_COLUMNS and c not in hparam_columns(frame)]
        raise checks.unknown("objective", objective, logged, owner="these records")
    per_execution = (frame.groupby(["project", "trial_id", "execution"], dropna=False)[objective]
                     .min().rename("score").reset_index())
    hparams = hparam_columns(frame)
    first = frame.drop_duplicates(["project", "trial_id"]).set_index(["project", "trial_id"])[hparams]
    trials = per_execution.groupby(["project", "trial_id"])["score"].agg(
        **{objective: "mean", f"{objective}_std": "std", "executions": "count"})
    return trials.join(first).reset_index()


def best(frame, objective, by=None):
    """The best trial (lowest objective) overall, or per group of `by` (a column or list of columns)."""
    trials = trial_scores(frame, objective).dropna(subset=[objective])
    trials = trials.sort_values(objective, kind="stable")
    if by is None:
        return trials.reset_index(drop=True)
    by = [by] if isinstance(by, str) else list(by)
    for column in by:
        if column not in trials:
            raise checks.unknown("hparam", column, hparam_columns(frame), owner="grouping")
    best_rows = trials.groupby(by, sort=True).head(1)
    columns = by + [c for c in best_rows.columns if c not in by]
    return best_rows[columns].sort_values(by).reset_index(drop=True)


def curves(frame, metric, trial_ids):
    """{trial_id: DataFrame(epoch, mean, std, executions)} of `metric` over a trial's executions."""
    out = {}
    for tid in trial_ids:
        rows = frame[frame["trial_id"] == tid]
        grouped = rows.groupby("epoch")[metric]
        out[tid] = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std().fillna(0.0),
                                 "executions": grouped.count()}).reset_index()
    return out


def plot_curves(frame, metric, by="algorithm", path="curves.png", objective=None):
    """Mean ± std learning curves of `metric` for the best trial of every group, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = best(frame, objective or metric, by=by)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, row in chosen.iterrows():
        curve = curves(frame, metric, [row["trial_id"]])[row["trial_id"]]
        label = f"{row[by]} ({row['trial_id']})" if by else row["trial_id"]
        ax.plot(curve["epoch"] + 1, curve["mean"], label=label)
        ax.fill_between(curve["epoch"] + 1, curve["mean"] - curve["std"], curve["mean"] + curve["std"], alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"best trial per {by}: mean ± std over executions" if by else "best trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:  # the format follows path's extension, as savefig(path) would infer it
        io.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120), os.path.splitext(path)[1])
    finally:
        plt.close(fig)
    return path


def _default_objective(frame):
    for name in ("val_error_rate", "val_loss", "error_rate", "loss"):
        if name in frame and frame[name].notna().any():
            return name
    raise ValueError("No objective metric in the records.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bpfree.results", description="Best hparams and learning curves.")
    parser.add_argument("experiment_dir")
    parser.add_argument("--by", default=None, help="group by this hparam (e.g. algorithm)")
    parser.add_argument("--objective", default=None, help="metric to minimise (default: val_error_rate if logged)")
    parser.add_argument("--plot", default=None, help="write mean ± std curves of the best trial per group here (PNG)")
    args = parser.parse_args(argv)
    errors = []
    try:
        frame = load(args.experiment_dir, errors=errors)
        if frame.empty:
            raise ValueError(f"No records under {args.experiment_dir!r}.")
        objective = args.objective or _default_objective(frame)
        table = best(frame, objective, by=args.by)
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(table.to_string(index=False))
        if args.plot:
            plot_curves(frame, objective, by=args.by or "algorithm", path=args.plot)
            print(f"curves: {args.plot}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
