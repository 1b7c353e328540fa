"""The best configuration per rule at a glance: a TensorBoard run ``best/<rule>`` for each rule of a search.

Written when a search ends (`write_best`), from its records: for each rule, the trial `bpfree.results.best`
ranks first among that rule's (the search's objective and score rule; the report's choice), its curves as
the mean over its completed executions per epoch, under the tags of an execution's run (``loss/train``,
``error_rate/validation``, ...; `bpfree.tuning.tensorboard_runs.tag`), and a text ``best_configuration``
naming the trial, its score and its hparams. With the run filter ``^best/`` the Scalars page shows one
curve per rule (few runs: TensorBoard ticks them itself). The runs carry no hparams, so the HParams
dashboard lists executions only. Every search that ends rewrites a rule's run whose content changed (the
ranking, or more epochs) and removes those of rules no longer ranked.
"""

import hashlib
import math
import os
import shutil

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary

from bpfree.tuning import tensorboard_runs

BEST_DIRNAME = "best"


def write_best(project_dir, log=print):
    """Writes ``<project_dir>/tensorboard/best/<rule>`` for every rule with a finite score in the records
    under `project_dir`, replacing the previous ones; returns {rule: trial id}. A summary that cannot be
    written (a full disk, records the read side refuses) is said in one line: the search's records stand."""
    try:
        return _write_best(project_dir, os.path.join(project_dir, "tensorboard"))
    except (OSError, ValueError) as e:
        log(f"TensorBoard best-per-rule runs not written: {type(e).__name__}: {e}")
        return {}


def _write_best(project_dir, tensorboard_dir):
    from bpfree import results  # the read side (pandas), only when a search ends

    frame = results.load(project_dir)
    chosen = {}
    if len(frame) and "algorithm" in frame:
        frame = frame[~frame["confirmation"]] if "confirmation" in frame else frame
        table = results.best(frame)  # every trial with a finite score, best first
        objective = table.attrs["objective"]
        for row in table.itertuples(index=False):
            rule = row.algorithm
            if rule not in chosen:
                chosen[rule] = (row.trial_id, getattr(row, objective), row)
    best_dir = os.path.join(tensorboard_dir, BEST_DIRNAME)
    for rule in os.listdir(best_dir) if os.path.isdir(best_dir) else []:
        if rule not in chosen:
            shutil.rmtree(os.path.join(best_dir, rule))
    for rule, (tid, score, row) in chosen.items():
        runs = frame[(frame["trial_id"] == tid) & (frame["status"] == "completed")]
        metrics = [m for m in results.metric_columns(frame) if runs[m].notna().any()]
        curves = runs.groupby("epoch")[metrics].mean()
        summaries = []
        for epoch, values in curves.iterrows():
            summary = summary_pb2.Summary()
            for name, value in values.items():
                if math.isfinite(value):
                    summary.value.extend(scalar_summary.scalar_pb(tensorboard_runs.tag(name), value).value)
            summaries.append((int(epoch), summary))
        text = _description(rule, tid, objective, score, runs, frame, row)
        summaries.append((0, text_summary.text_pb("best_configuration", text)))
        # Named by its content: a search that changes nothing keeps the file (and a running TensorBoard its curves).
        digest = hashlib.sha1(b"".join(s.SerializeToString(deterministic=True) + str(e).encode()
                                       for e, s in summaries)).hexdigest()[:12]
        run_dir = os.path.join(best_dir, rule)
        if os.path.isdir(run_dir) and any(n.endswith(f".{digest}") for n in os.listdir(run_dir)):
            continue
        if os.path.isdir(run_dir):
            shutil.rmtree(run_dir)
        tensorboard_runs.write_events(tensorboard_runs.event_file_name(run_dir, f".{digest}"),
                                      [tensorboard_runs.summary_event(s, e) for e, s in summaries])
    return {rule: tid for rule, (tid, _, _) in chosen.items()}


def _description(rule, tid, objective, score, runs, frame, row):
    """Markdown: the trial, its score over its executions, and its hparams (those it has)."""
    executions = sorted(set(runs["execution"]))
    std = getattr(row, f"{objective}_std", np.nan)
    spread = f" ± {std:.4g}" if isinstance(std, float) and math.isfinite(std) else ""
    first = runs.iloc[0] if len(runs) else frame[frame["trial_id"] == tid].iloc[0]
    shown = [(h, first[h]) for h in frame.attrs.get("hparams", []) if h in first.index]
    shown = [(h, v) for h, v in shown if not (isinstance(v, float) and math.isnan(v))]  # another rule's hparam
    plural = "s" if len(executions) != 1 else ""
    lines = [f"**{rule}**: trial `{tid}`, {objective} {score:.4g}{spread} (score: {row.scored_by}; mean over "
             f"{len(executions)} completed execution{plural}: {', '.join(str(int(e)) for e in executions)}). "
             "Curves: the mean per epoch over them.", "", "| hparam | value |", "|---|---|"]
    lines += [f"| {h} | {v} |" for h, v in shown]
    return "\n".join(lines)
