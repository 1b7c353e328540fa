"""Figures of a `load` frame: mean ± std learning curves of the best trials, the trackers' alignment curves.

matplotlib is imported inside the functions that draw (`bpfree.figures.pyplot`: the Agg backend, files and
no display), not at the top, so that reading records and printing tables never loads it. Every figure is
written by `save_figure` (the format follows the path's extension).
"""

import os
import re

import pandas as pd

from bpfree import figures, io
from bpfree.results.frame import metric_columns
from bpfree.results.scores import best, parse_by
from bpfree.results.tables import group_label

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
