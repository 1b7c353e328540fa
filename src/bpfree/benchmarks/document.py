"""``docs/benchmarks/<name>.md``: our numbers beside the published ones, the protocol, what differs, time.

Written from the records alone (no TensorFlow), so ``--write_only`` rewrites it from an experiment that ran
elsewhere. The section between the notes markers is hand-written (each gap's explanation, measured) and is
kept when the page is rewritten.
"""

import datetime
import math

from bpfree import io, records, results
from bpfree.benchmarks import compare, runner

NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
SETTINGS_SHOWN = ("num_epochs", "executions_per_trial", "batch_size", "optimizer", "momentum", "weight_decay",
                  "lr_schedule", "lr_milestones", "lr_factor", "scaler", "input_size", "resize", "validation_frac",
                  "score", "test_each_epoch", "seed")


def write(table, experiment_dir, path, command, protocol):
    frame = results.load(experiment_dir)
    settings = _recorded_settings(experiment_dir)
    runs = runner.read_runs(experiment_dir)
    made = list(dict.fromkeys("python -m bpfree.benchmarks " + " ".join(r.get("argv") or [table.name])
                              for r in runs if r.get("protocol") == protocol)) or [command]
    sources = "; ".join(f"{d}: {settings[d]['data_source']}" for d in table.datasets
                        if settings.get(d, {}).get("data_source"))
    lines = [f"# {table.title}", "",
             f"Records made by `{'`, `'.join(made)}` ({protocol} protocol; data — {sources or 'not recorded'}); "
             f"this page written by `{command}` on {datetime.date.today().isoformat()} from the records in "
             f"`{experiment_dir}`. Test error rate in percent: mean ± sample std over "
             "seeds, each at its best validation epoch, of the learning rate whose mean validation error is lowest "
             "(the test split chooses nothing; a run that diverged is scored by its best epoch before it). "
             "Published: " + table.source + "; the paper reports the " +
             table.published_selection + ".", ""]
    algorithms = list(table.published_rules()) + [a for a in _algorithms(frame) if a not in table.published_rules()]
    all_targets = {}
    for dataset in table.datasets:
        rows = compare.rows(frame, dataset, table.published.get(dataset, {}), algorithms)
        all_targets[dataset] = compare.targets(rows)
        lines += _dataset_section(dataset, rows, all_targets[dataset])
    lines += _targets_section(all_targets)
    lines += _protocol_section(table, settings, protocol)
    lines += ["## What differs from the paper", ""] + [f"- {d}" for d in table.differences] + [""]
    lines += _time_section(table, frame, runs, protocol)
    lines += ["## Gaps, explained", "", NOTES_START, _kept_notes(path), NOTES_END, ""]
    text = "\n".join(lines)

    def write_text(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return io.write_atomic(path, write_text, ".md")


def _algorithms(frame):
    return list(dict.fromkeys(frame["algorithm"])) if "algorithm" in frame else []


def _cell(mean, std=None, n=None):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = f"{mean:.2f}"
    if std is not None and not math.isnan(std):
        text += f" ± {std:.2f}"
    if n is not None:
        text += f" (n={n})"
    return text


def _dataset_section(dataset, rows, targets):
    bp = next((r for r in rows if r.algorithm == "bp"), None)
    lines = [f"## {dataset}", "",
             "| rule | paper | ours | paper − BP | ours − BP | lr chosen | epochs chosen | validation error | targets |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = _cell(*r.published) if r.published else "—"
        ours = _cell(r.mean, r.std, r.runs) if r.test else "not run"
        if r.test and not r.complete:
            ours += " (partial)"
        if r.diverged:
            ours += f" ({r.diverged} of {r.executions} runs diverged)"
        paper_gap = (f"{r.published[0] - bp.published[0]:+.2f}" if r.published and bp and bp.published
                     and r.algorithm != "bp" else "")
        our_gap = f"{r.mean - bp.mean:+.2f}" if r.test and bp and bp.test and r.algorithm != "bp" else ""
        met = targets.get(r.algorithm, {})
        words = "; ".join(f"{'✓' if ok else '✗' if ok is False else '·'} {text}" for ok, text in met.values())
        lines.append(f"| {r.algorithm} | {paper} | {ours} | {paper_gap} | {our_gap} | "
                     f"{'' if r.lr is None else f'{r.lr:g}'} | {', '.join(map(str, r.epochs))} | "
                     f"{_cell(r.validation)} | {words} |")
    return lines + [""]


def _targets_section(all_targets):
    met = [ok for targets in all_targets.values() for checks in targets.values() for ok, _ in checks.values()
           if ok is not None]
    return ["## Targets", "",
            f"{sum(met)} of {len(met)} checks met (✓ met, ✗ missed, · not applicable): BP within 2 published std "
            f"(or {compare.BP_TOLERANCE} points) of the paper's; each rule on the same side of BP as in the paper; "
            f"its gap to BP within {compare.GAP_RATIO}× of the paper's. Only rules the paper reports are checked.", ""]


def _recorded_settings(experiment_dir):
    """{dataset: the search settings its records were made with} (one record each)."""
    out = {}
    for path in records.iter_record_paths(experiment_dir):
        try:
            data = records.read(path)
        except records.RecordError:
            continue
        search = data.get("search") or {}
        out.setdefault(search.get("dataset"), {**search, "data_source": data.get("data_source")})
    return out


def _protocol_section(table, settings, protocol):
    lines = ["## Protocol run", "", "| setting | " + " | ".join(table.datasets) + " |",
             "|---|" + "---|" * len(table.datasets)]
    for name in SETTINGS_SHOWN:
        values = [settings.get(d, {}).get(name) for d in table.datasets]
        if any(v is not None for v in values):
            lines.append(f"| {name} | " + " | ".join("" if v is None else str(v) for v in values) + " |")
    changed = ", ".join(f"{k} → {v}" for k, v in table.changes(protocol).items())
    return lines + ["", f"The full protocol is `hparams/benchmarks/{table.name}.toml`" + (
        f"; the {protocol} one run here changes {changed} (a step schedule's milestones scaled to the epochs run)."
        if changed else ", run here as it is."), ""]


def _time_section(table, frame, runs, protocol):
    lines = ["## Time", "", "| dataset | wall s | CPU s | execution-epochs run | wall s per execution-epoch | "
             "full protocol here (projected) |", "|---|---|---|---|---|---|"]
    for dataset in table.datasets:
        mine = [r for r in runs if r.get("dataset") == dataset and r.get("protocol") == protocol]
        wall = sum(r.get("wall_seconds", 0.0) for r in mine)
        cpu = sum(r.get("cpu_seconds", 0.0) for r in mine)
        sub = frame[frame["project"].map(compare.dataset_of) == dataset] if "project" in frame else frame
        epochs = int(sub["epoch"].notna().sum()) if not sub.empty else 0
        per = wall / epochs if epochs else math.nan
        search, space = runner.settings(table, dataset, "full")
        full = (len(space["algorithm"]) * len(space["lr"]) * search["executions_per_trial"] * search["num_epochs"])
        projected = f"{full:,} execution-epochs ≈ {per * full / 3600:.1f} h" if epochs else "—"
        lines.append(f"| {dataset} | {wall:.0f} | {cpu:.0f} | {epochs} | {per:.2f} | {projected} |")
    return lines + ["", "Wall and CPU seconds are those of `python -m bpfree.benchmarks` (all its invocations, "
                        "resumed ones summed) on this machine; the projection scales the measured seconds per "
                        "execution-epoch to the full protocol's grid.", ""]


def _kept_notes(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return "(none yet)"
    start, end = text.find(NOTES_START), text.find(NOTES_END)
    if start < 0 or end < start:
        return "(none yet)"
    return text[start + len(NOTES_START):end].strip("\n")
