"""The section of RESULTS.md on SetFit's recipe, cross-validated selection and calibration.

    python -m benchmarks.selection_table          # prints the section

From the accuracy records of one setting (default: budget `auto`): the rows of SetFit itself
(`setfit`), SetFit's recipe on listserve's tuner (`contrastive`), LiST from it
(`list-contrastive`), and each shipping what cross-validation on the K labels prefers (`-cv`),
beside `zero-shot`, `prompt` and `list`; the expected calibration error of the served scores on
the test sets, before and after the fitted temperature; what the cross-validation chose and
what it cost; and the issue's targets for every row. Tuners other than `adapter` show as
`row [tuner]`.
"""

import argparse
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.accuracy_table import DEFAULT_SETTING, UPPER, add_upper_bound, aggregate
from benchmarks.harness.accuracy_records import TASK_ORDER, select
from benchmarks.harness.records import (
    ACCURACY_RESULTS,
    date_span,
    display_path,
    read_records,
    unique_records,
)

ROWS = (
    "zero-shot",
    "setfit",
    "prompt",
    "prompt-cv",
    "contrastive",
    "contrastive-cv",
    "list",
    "list-cv",
    "list-contrastive",
    "list-contrastive-cv",
)
PEER = "setfit"
# What `auto` trains for a task that names no method or hyperparameters (the API's defaults).
AUTO_DEFAULT = "list"
SETTING = {**DEFAULT_SETTING, "budget": "auto"}
# The targets, on the seven-task mean with the same backbone.
PEER_MARGIN = 5.0
ECE_TARGET = 0.05
BOUND_RATIO = 0.85


def _name(record: dict) -> str:
    tuner = record.get("tuner", "adapter")
    return record["method"] if tuner == "adapter" else f"{record['method']} [{tuner}]"


def _rows(records: list[dict]) -> list[str]:
    """The section's rows present in the records, adapter first, then each other tuner's."""
    present = {_name(r) for r in records}
    ordered = [row for row in ROWS if row in present]
    return ordered + sorted(name for name in present if name not in ordered and name[0] != "f")


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ece(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def accuracy_lines(cells, rows: list[str], tasks: list[str], seeds: int) -> list[str]:
    lines = ["| row | " + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 2) + "|"]
    for row in rows:
        texts = []
        for task in tasks:
            cell = cells.get((row, task))
            enough = cell is None or len(cell.seeds) >= seeds or row == UPPER
            mark = "" if enough else f" (n={len(cell.seeds)})"
            texts.append("—" if cell is None else f"{100 * cell.accuracy:.1f}{mark}")
        lines.append(f"| {row} | " + " | ".join(texts) + f" | {_partial_mean(cells, row, tasks)} |")
    return lines


def _partial_mean(cells, row: str, tasks: list[str]) -> str:
    """The mean over the tasks the row has; over fewer than all of them it says how many."""
    have = [t for t in tasks if (row, t) in cells]
    mean = _pct(_mean([cells[(row, t)].accuracy for t in have]))
    return mean if len(have) == len(tasks) else f"{mean} ({len(have)}/{len(tasks)} tasks)"


def ece_lines(by_row: dict[str, list[dict]], rows: list[str], tasks: list[str]) -> list[str]:
    """Per row and task the mean ECE of the served scores; `before` rows the same scores
    before the cross-validated temperature."""
    lines = ["| row | scores | " + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 3) + "|"]
    for row in rows:
        for field, label in (("ece_uncalibrated", "before"), ("ece", "served")):
            per_task = defaultdict(list)
            for record in by_row[row]:
                if record.get(field) is not None:
                    per_task[record["task"]].append(record[field])
            if not per_task:
                continue
            values = [_mean(per_task[t]) if t in per_task else None for t in tasks]
            full = all(v is not None for v in values)
            cells = " | ".join(_ece(v) for v in values)
            lines.append(f"| {row} | {label} | {cells} | {_ece(_mean(values) if full else None)} |")
    return lines


def choice_lines(by_row: dict[str, list[dict]], rows: list[str]) -> list[str]:
    """What the cross-validation shipped, and what it cost against the same row's `last`."""
    lines = [
        "| row | jobs | shipped: prior / checkpoint / blend | mean temperature | mean prior "
        "weight | mean CV acc | mean test acc | train CPU s/job | vs last |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        chosen = [r for r in by_row[row] if r.get("selection")]
        if not chosen:
            continue
        kinds = Counter(_kind(r["selection"]) for r in chosen)
        cpu = _mean([r["cpu_s"] for r in chosen])
        base = row.replace("-cv", "")
        paired = _paired_cpu(chosen, by_row.get(base, []))
        lines.append(
            f"| {row} | {len(chosen)} | {kinds['prior']} / {kinds['checkpoint']} / "
            f"{kinds['blend']} | {_mean([r['selection']['temperature'] for r in chosen]):.2f} | "
            f"{_mean([r['selection']['prior_weight'] for r in chosen]):.2f} | "
            f"{_pct(_mean([r['selection']['cv_accuracy'] for r in chosen]))} | "
            f"{_pct(_mean([r['accuracy'] for r in chosen]))} | {cpu:.0f} | {paired} |"
        )
    return lines


def _kind(selection: dict) -> str:
    choice = selection["choice"]
    if choice == "prior" or (choice.startswith("blend") and selection["prior_weight"] == 1.0):
        return "prior"
    if choice.startswith("blend") and selection["prior_weight"] > 0.0:
        return "blend"
    return "checkpoint"


def _paired_cpu(chosen: list[dict], last: list[dict]) -> str:
    """Mean CPU seconds of the cv jobs over their `last` twins (same task and seed)."""
    twins = {(r["task"], r["seed"]): r["cpu_s"] for r in last}
    ratios = [
        r["cpu_s"] / twins[(r["task"], r["seed"])]
        for r in chosen
        if (r["task"], r["seed"]) in twins
    ]
    return f"{statistics.fmean(ratios):.1f}x ({len(ratios)} pairs)" if ratios else "—"


def target_lines(cells, by_row, rows: list[str], tasks: list[str]) -> list[str]:
    """Every listserve row with all tasks against the issue's four targets."""
    lines = [
        f"| row | mean | vs {PEER} (>= +{PEER_MARGIN:g}) | >= zero-shot on every task | "
        f"ECE (< {ECE_TARGET}) | / upper bound (>= {BOUND_RATIO}) |",
        "|---|---:|---|---|---|---|",
    ]
    peer = _task_mean(cells, PEER, tasks)
    for row in rows:
        mean = _task_mean(cells, row, tasks)
        if row in ("zero-shot", PEER) or mean is None:
            continue
        gap = None if peer is None else 100 * (mean - peer)
        below = [t for t in tasks if cells[(row, t)].accuracy < cells[("zero-shot", t)].accuracy]
        eces = [r["ece"] for r in by_row[row] if r.get("ece") is not None]
        ece = (
            _mean(eces)
            if len({r["task"] for r in by_row[row] if "ece" in r}) == len(tasks)
            else None
        )
        bound = _task_mean(cells, UPPER, tasks)
        ratio = None if bound is None else mean / bound
        name = f"**{row}** (auto default)" if row == AUTO_DEFAULT else row
        versus = _held(gap, gap is not None and gap >= PEER_MARGIN, "+.1f")
        lines.append(
            f"| {name} | {_pct(mean)} | {versus} | "
            f"{'yes' if not below else 'NO: ' + ', '.join(below)} | "
            f"{_held(ece, ece is not None and ece < ECE_TARGET, '.3f')} | "
            f"{_held(ratio, ratio is not None and ratio >= BOUND_RATIO, '.3f')} |"
        )
    partial = [
        f"`{row}` ({sum((row, t) in cells for t in tasks)}/{len(tasks)} tasks)"
        for row in rows
        if row not in ("zero-shot", PEER) and _task_mean(cells, row, tasks) is None
    ]
    if partial:
        lines += ["", f"Not judged, tasks missing: {', '.join(partial)}."]
    return lines


def _held(value: float | None, holds: bool, spec: str) -> str:
    return "—" if value is None else f"{value:{spec}} {'yes' if holds else 'NO'}"


def _task_mean(cells, row: str, tasks: list[str]) -> float | None:
    if not tasks or not all((row, t) in cells for t in tasks):
        return None
    return statistics.fmean(cells[(row, t)].accuracy for t in tasks)


def section(results: Path, setting: dict = SETTING, seeds: int = 3) -> str | None:
    """The section for `setting`'s records; the upper bound comes from the full-data rows of
    this setting or, without them, of the `fast` one (the same K-free training pool)."""
    every = unique_records(read_records(results))
    records = [
        {**r, "method": _name(r)}
        for r in select(every, **setting)
        if _name(r).split(" [")[0] in ROWS
    ]
    if not records:
        return None
    present = {r["task"] for r in records}
    tasks = [t for t in TASK_ORDER if t in present]
    cells = aggregate(records)
    bound_records = [r for r in select(every, **setting) if r["method"].startswith("full-")]
    bound_from = setting["budget"]
    if not bound_records:
        bound_records = [
            r for r in select(every, **DEFAULT_SETTING) if r["method"].startswith("full-")
        ]
        bound_from = DEFAULT_SETTING["budget"]
    cells.update(aggregate(bound_records))
    add_upper_bound(cells, tasks)
    by_row: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_row[record["method"]].append(record)
    rows = _rows(records)
    versions = sorted({r["setfit_version"] for r in records if r.get("setfit_version")})
    settings = next((r["setfit_settings"] for r in records if r.get("setfit_settings")), None)
    out = [
        f"## SetFit's recipe, cross-validated selection and calibration (K = {setting['k']}, "
        f"{setting['backbone']}, budget `{setting['budget']}`)",
        "",
        f"Table: `python -m benchmarks.selection_table`, from {len(records)} records in "
        f"`{display_path(results)}` ({date_span(records)}). Mean test accuracy (%) over seeds "
        f"(planned: {seeds}; fewer marked n=…). `-cv` rows ship what 5-fold cross-validation on "
        "the K labels prefers among the zero-shot prior, each checkpoint and its blend with the "
        "prior, with a temperature fit on the same folds (docs/selection.md); the other rows ship "
        f"their last model. `setfit`: SetFit {', '.join(versions) or '—'} with library defaults on "
        f"the same splits (`benchmarks/harness/setfit_accuracy.py`; settings: "
        f"`{settings}`). Upper bound: the full-data rows of budget `{bound_from}`.",
        "",
        "### Test accuracy (%)",
        "",
        *accuracy_lines(
            cells, [*rows, UPPER] if (UPPER, tasks[0]) in cells else rows, tasks, seeds
        ),
        "",
        "### Expected calibration error of the served `score` (test sets, 15 bins)",
        "",
        *ece_lines(by_row, rows, tasks),
        "",
        "### What cross-validation shipped, and its cost",
        "",
        *choice_lines(by_row, rows),
        "",
        "### Targets (seven-task mean; same backbone)",
        "",
        *target_lines(cells, by_row, rows, tasks),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection_table")
    parser.add_argument("--results", type=Path, default=ACCURACY_RESULTS)
    parser.add_argument("--budget", default=SETTING["budget"])
    args = parser.parse_args(argv)
    text = section(args.results, {**SETTING, "budget": args.budget})
    print(text or f"no records in {args.results}")
    return 0 if text else 1


if __name__ == "__main__":
    raise SystemExit(main())
