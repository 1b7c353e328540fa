"""Figures of a `load` frame: mean ± std learning curves of the best trials, the trackers' alignment curves,
the objective against the learning rate per rule (where a grid's edges show).

matplotlib is imported inside the functions that draw (`bpfree.figures.pyplot`: the Agg backend, files and
no display), not at the top, so that reading records and printing tables never loads it. Every figure is
written by `save_figure` (the format follows the path's extension).
"""

import os
import re

import pandas as pd

from bpfree import figures, io
from bpfree.results.frame import hparam_columns, metric_columns, rule_column
from bpfree.results.scores import best, execution_scores, parse_by, rule_hparams_that_vary, trial_scores
from bpfree.results.tables import cell, group_label

# The trackers' alignment metrics as `bpfree.trackers.metric_names` names them: "<tracker>_<layer>".
ALIGNMENT = {"bp_cosine": "cos(ΔW rule, ΔW bp) per layer", "weight_alignment": "cos(W_l, its feedback target)"}
ALIGNMENT_METRIC = re.compile(r"(" + "|".join(ALIGNMENT) + r")_([0-9]+)")


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
    plt = figures.pyplot()
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
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_title(f"best trial per {', '.join(by)}: mean ± std over executions" if by else "best trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def lr_curves(frame, objective=None, score=None):
    """The objective against the learning rate, one curve per rule (and per value of a rule hparam that
    varies within a rule): a DataFrame with one row per (rule, lr) — the group columns, lr, mean, std, min,
    max, executions (finite scores), trial_id and project of the best trial at that lr (lowest mean over its
    executions; the other hparams are chosen at every lr, as a best-per-rule table chooses them), sorted by
    group and lr. Its attrs: "objective", "by". A trial none of whose executions has a finite score (all
    diverged) leaves its lr out of the curve; confirmation executions are left out, and so are Hyperband's
    executions trained to fewer epochs than num_epochs (``partial``: never compared with full ones)."""
    if "lr" not in hparam_columns(frame):
        raise ValueError("No lr hparam in these records: no curve of the objective against the learning rate.")
    for column in ("confirmation", "partial"):
        # confirmation executions (re-runs after the selection) are no part of the grid; partial ones ran fewer epochs
        if column in frame and frame[column].fillna(False).astype(bool).any():
            attrs = dict(frame.attrs)
            frame = frame[~frame[column].fillna(False).astype(bool)]
            frame.attrs.update(attrs)
    per = execution_scores(frame, objective, score)
    objective = per.attrs["objective"]
    trials = trial_scores(frame, objective, score).dropna(subset=[objective])
    spread = per.groupby(["project", "trial_id"])["score"].agg(["min", "max"]).reset_index()
    trials = trials.merge(spread, on=["project", "trial_id"], how="left")
    rule = rule_column(frame)
    by = [rule] if rule else []
    by += rule_hparams_that_vary(trials, by, hparam_columns(frame))
    keys = by + ["lr"]
    chosen = trials.sort_values(objective, kind="stable").groupby(keys, sort=False, dropna=False).head(1)
    out = chosen[keys + [objective, f"{objective}_std", "min", "max", "executions", "trial_id", "project"]].rename(
        columns={objective: "mean", f"{objective}_std": "std"}).sort_values(keys, kind="stable").reset_index(drop=True)
    out.attrs.update(objective=objective, by=by)
    return out


def plot_lr(frame, objective=None, path="lr.png", score=None):
    """The objective (mean over executions, the band from the lowest to the highest execution) against the
    learning rate on a log axis, a line per rule (`lr_curves`), saved as PNG (or the path's format); the
    lowest point of each line is ringed, so a best lr at the grid's edge shows at a glance."""
    plt = figures.pyplot()
    data = lr_curves(frame, objective, score)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, (label, curve) in enumerate(_lr_groups(data)):
        color = f"C{index % 10}"
        ax.plot(curve["lr"], curve["mean"], marker="o", color=color, label=label)
        ax.fill_between(curve["lr"], curve["min"], curve["max"], color=color, alpha=0.2)
        lowest = curve.loc[curve["mean"].idxmin()]
        ax.plot([lowest["lr"]], [lowest["mean"]], marker="o", markersize=12, markerfacecolor="none", color=color)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(data.attrs["objective"])
    ax.set_title("best configuration at each lr: mean over executions, band min–max; ringed: lowest")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def lr_at_the_edge(curves):
    """{group label: "smallest" | "largest"}: the rules whose lowest mean sits at an end of their lr grid
    (of more than one lr), where the grid may not have reached the best learning rate."""
    edges = {}
    for label, curve in _lr_groups(curves):
        if len(curve) < 2:
            continue
        lowest = curve.loc[curve["mean"].idxmin(), "lr"]
        if lowest == curve["lr"].min():
            edges[label] = "smallest"
        elif lowest == curve["lr"].max():
            edges[label] = "largest"
    return edges


def _lr_groups(curves):
    """[(label, rows)] of an `lr_curves` frame: "dfa", "gait · orthogonal_reg 0.1"; "all" ungrouped."""
    by = curves.attrs["by"]
    if not by:
        return [("all", curves)]
    out = []
    for key, rows in curves.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((" · ".join([cell(key[0])] + [f"{c} {cell(v)}" for c, v in zip(by[1:], key[1:])]), rows))
    return out


def alignment_metrics(frame, table):
    """[(tracker, layer, column)] of the alignment metrics logged for at least one of the table's trials."""
    chosen = frame.merge(table[["project", "trial_id"]], on=["project", "trial_id"])
    found = []
    for column in metric_columns(frame):
        match = ALIGNMENT_METRIC.fullmatch(column)
        if match and chosen[column].notna().any():
            found.append((match.group(1), int(match.group(2)), column))
    return sorted(found)


def plot_alignment(frame, table, stem):
    """{tracker: figure path}: one figure per alignment tracker the table's trials have records of, a line
    per trial and layer, mean over executions; written to `<stem>_<tracker>.png`."""
    plt = figures.pyplot()
    metrics = alignment_metrics(frame, table)
    paths = {}
    for name in [n for n in ALIGNMENT if any(m[0] == n for m in metrics)]:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, (_, row) in enumerate(table.iterrows()):
            for _, layer, column in [m for m in metrics if m[0] == name]:
                curve = curves(frame, column, [row["trial_id"]], row["project"])[row["trial_id"]]
                if curve["mean"].notna().any():
                    ax.plot(curve["epoch"] + 1, curve["mean"], color=f"C{index % 10}",
                            linestyle=("-", "--", ":", "-.")[(layer - 1) % 4],
                            label=f"{group_label(row, table.attrs['by'])} layer {layer}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_title(ALIGNMENT[name])
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths[name] = save_figure(fig, f"{stem}_{name}.png")
    return paths


def save_figure(fig, path):
    """Writes a matplotlib figure atomically (format from the extension) and closes it."""
    plt = figures.pyplot()
    try:  # the format follows path's extension, as savefig(path) would infer it
        io.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120), os.path.splitext(path)[1])
    finally:
        plt.close(fig)
    return path
