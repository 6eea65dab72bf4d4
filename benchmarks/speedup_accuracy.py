"""Accuracy with the training speed-ups against the same jobs before them, paired job by job
(issue 31: the mean over the seven tasks, seeds 1-3, within 0.5 points).

    python -m benchmarks.accuracy --threads 1 --methods list --seeds 1,2,3 --budget fast \
        --label speedups-all --out benchmarks/results/fast_training_accuracy.jsonl

reruns the `list` rows of benchmarks/results/accuracy.jsonl with today's code (resumable like
every accuracy run); RESULTS.md pairs each record with the first record of the same job key
(task, seed, split and setting) there, which ran the path before the speed-ups.
"""

import math
import statistics
from pathlib import Path

from benchmarks.harness.records import ACCURACY_RESULTS, read_records, record_key, unique_records

SPEEDUP_ACCURACY = ACCURACY_RESULTS.parent / "fast_training_accuracy.jsonl"
TOLERANCE_POINTS = 0.5
PLANNED_SEEDS = (1, 2, 3)


def paired(after: list[dict], before: list[dict]) -> list[tuple[dict, dict]]:
    """(before, after) for each job of `after` that `before` also ran."""
    first = {record_key(record): record for record in unique_records(before)}
    return [
        (first[record_key(record)], record)
        for record in unique_records(after)
        if record_key(record) in first
    ]


def planned(after: list[dict], before: list[dict]) -> list[dict]:
    """The jobs of `before` that issue 31 pairs: seeds 1-3 of every task `before` ran in the
    setting of some job of `after` (the same key but for task and seed)."""
    keys = {record_key(record) for record in after}
    return [
        record
        for record in unique_records(before)
        if record.get("seed") in PLANNED_SEEDS
        and any(
            record_key({**record, "task": job["task"], "seed": job["seed"]}) in keys
            for job in after
        )
    ]


def section(
    after_path: Path = SPEEDUP_ACCURACY, before_path: Path = ACCURACY_RESULTS
) -> str | None:
    """RESULTS.md's section, or None before any paired record exists."""
    after = read_records(after_path)
    pairs = paired(after, read_records(before_path))
    if not pairs:
        return None
    by_task: dict[str, list[tuple[dict, dict]]] = {}
    for pair in pairs:
        by_task.setdefault(pair[1]["task"], []).append(pair)
    diffs = [100 * (new["accuracy"] - old["accuracy"]) for old, new in pairs]
    mean = statistics.fmean(diffs)
    spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    wanted = planned(after, read_records(before_path))
    done = {record_key(old) for old, _ in pairs}
    missing = sorted(
        (record for record in wanted if record_key(record) not in done),
        key=lambda record: (record["seed"], record["task"]),
    )
    commands = sorted({record["command"] for record in after if "command" in record})
    lines = [
        "## Accuracy with the training speed-ups (issue 31)",
        "",
        "Each job of `benchmarks/results/fast_training_accuracy.jsonl` (today's training, all "
        "speed-ups) against the same job (task, seed, split, setting) in "
        "`benchmarks/results/accuracy.jsonl`, trained before them; test accuracy in %. "
        "Commands:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "| task | seeds | before | after | after - before (points) | training CPU s, before "
        "→ after |",
        "|---|---|---:|---:|---|---:|",
    ]
    for task, group in sorted(by_task.items()):
        seeds = ",".join(str(new["seed"]) for _, new in group)
        old = statistics.fmean(100 * o["accuracy"] for o, _ in group)
        new = statistics.fmean(100 * n["accuracy"] for _, n in group)
        each = ", ".join(f"{100 * (n['accuracy'] - o['accuracy']):+.1f}" for o, n in group)
        lines.append(f"| {task} | {seeds} | {old:.1f} | {new:.1f} | {each} | {_cpu(group)} |")
    error = spread / math.sqrt(len(diffs))
    side = "within" if abs(mean) <= TOLERANCE_POINTS else "outside"
    if len(diffs) < 2 or error >= TOLERANCE_POINTS:
        verdict = (
            f"{side} the ±{TOLERANCE_POINTS} points issue 31 allows, but too few pairs to tell"
        )
    else:
        verdict = f"{side} the ±{TOLERANCE_POINTS} points issue 31 allows"
    lines += [
        "",
        f"Mean paired difference over {len(pairs)} job{'s' if len(pairs) != 1 else ''}: "
        f"{mean:+.2f} points (sample std {spread:.2f}, standard error of the mean "
        f"{error:.2f}), {verdict}. {len(pairs)} of the {len(wanted)} jobs "
        "it pairs (seeds 1-3 of every task the table ran in this setting) are done"
        + (f"; not yet: {_jobs(missing)}." if missing else "."),
        "The jobs before ran at the commits "
        + ", ".join(f"`{commit}`" for commit in _commits(pair[0] for pair in pairs))
        + ", so a difference holds every change since, not only the speed-ups; CPU seconds "
        "compare only roughly (other load, other CPU model between sessions).",
    ]
    return "\n".join(lines) + "\n"


def _jobs(records: list[dict]) -> str:
    return ", ".join(f"{record['task']} seed {record['seed']}" for record in records)


def _commits(records) -> list[str]:
    return sorted({record.get("commit", "?")[:7] for record in records})


def _cpu(group: list[tuple[dict, dict]]) -> str:
    timed = [(old, new) for old, new in group if "cpu_s" in old and "cpu_s" in new]
    if not timed:
        return "–"
    before = statistics.fmean(old["cpu_s"] for old, _ in timed)
    after = statistics.fmean(new["cpu_s"] for _, new in timed)
    return f"{before:.0f} → {after:.0f}"
