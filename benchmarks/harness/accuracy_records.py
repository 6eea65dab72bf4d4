"""Choosing and pairing accuracy records, for the accuracy and experiments tables.

A table shows one setting (backbone, budget, K, unlabelled cap) without `--set` experiments;
a change is judged by paired differences, the same task and seed (so the same labelled draw)
with and without it, so the draw's own effect cancels.
"""

import statistics
from collections import defaultdict

from benchmarks.harness.methods import FULL_DATA

TASK_ORDER = ("sst-2", "sst-5", "mr", "cr", "mpqa", "subj", "trec")


def select(
    records: list[dict], backbone: str, budget: str, k: int, unlabeled_cap: int | None
) -> list[dict]:
    """The records of one setting, without override experiments."""
    return [
        r
        for r in records
        if r["backbone"] == backbone
        and r["budget"] == budget
        and r.get("unlabeled_cap") == unlabeled_cap
        and not r.get("overrides")
        and (r["method"] in FULL_DATA or r["k"] == k)
    ]


def paired_by_task(
    changed: dict[tuple[str, int], float], baseline: dict[tuple[str, int], float]
) -> tuple[dict[str, float], int]:
    """Mean of `changed - baseline` per task over the (task, seed) keys both have, and how many
    pairs that was."""
    differences: dict[str, list[float]] = defaultdict(list)
    for key, value in changed.items():
        if key in baseline:
            differences[key[0]].append(value - baseline[key])
    per_task = {task: statistics.fmean(values) for task, values in differences.items()}
    return per_task, sum(len(values) for values in differences.values())


def paired_cells(deltas: dict[str, float], tasks: list[str], pairs: int) -> str:
    """Per-task paired differences in points, their mean, how many are negative, and the count
    of (task, seed) pairs behind them: the cells of a paired-difference row."""
    cells = [f"{100 * deltas[t]:+.1f}" if t in deltas else "—" for t in tasks]
    mean = 100 * statistics.fmean(deltas.values())
    lower = sum(d < 0 for d in deltas.values())
    return " | ".join([*cells, f"{mean:+.1f}", f"{lower}/{len(deltas)} tasks", str(pairs)])
