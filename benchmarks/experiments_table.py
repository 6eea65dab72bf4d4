"""Summarise hyperparameter experiments (`--set`) against the default rows, seed by seed.

    python -m benchmarks.experiments_table     # -> benchmarks/results/experiments.md

Each experiment (method + overrides) is compared with the default run of the same method on the
same tasks and seeds (same labelled draw), so a difference is the change's effect, not the
draw's. Test accuracy is what is shown; the experiments only propose defaults, and any adopted
default has to be re-run through the main table on all tasks and seeds.
"""

import argparse
import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.accuracy_table import TASK_ORDER, display_path, paired_cells, select
from benchmarks.records import ACCURACY_RESULTS, RESULTS_DIR, read_records, unique_records

EXPERIMENT_RESULTS = RESULTS_DIR / "experiments.jsonl"


def _label(overrides: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(overrides.items()))


def paired_rows(experiments: list[dict], defaults: list[dict]) -> list[dict]:
    """Per (method, overrides, task): mean accuracy and the paired difference to the default."""
    baseline = {(r["method"], r["task"], r["seed"]): r for r in defaults}
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for record in experiments:
        label = json.dumps(record["overrides"], sort_keys=True)
        groups[(record["method"], label, record["task"])].append(record)
    rows = []
    for (method, label, task), group in groups.items():
        paired = [r for r in group if (method, task, r["seed"]) in baseline]
        deltas = [r["accuracy"] - baseline[(method, task, r["seed"])]["accuracy"] for r in paired]
        last_pseudo = [r["history"][-1]["evaluation_accuracy"] for r in group if r.get("history")]
        rows.append(
            {
                "method": method,
                "overrides": json.loads(label),
                "task": task,
                "seeds": sorted(r["seed"] for r in group),
                "accuracy": statistics.fmean(r["accuracy"] for r in group),
                "delta": statistics.fmean(deltas) if deltas else None,
                "paired": len(paired),
                "pseudo": statistics.fmean(last_pseudo) if last_pseudo else None,
            }
        )
    return rows


def nested_pairs(experiments: list[dict]) -> list[dict]:
    """Experiments that add one override to another experiment of the same method, paired with
    it task by task and seed by seed: the added setting's own effect on top of the other."""
    accuracy = {
        (r["method"], json.dumps(r["overrides"], sort_keys=True), r["task"], r["seed"]): r[
            "accuracy"
        ]
        for r in experiments
    }
    settings = {(method, label) for method, label, _, _ in accuracy}
    pairs = []
    for method, label in sorted(settings):
        overrides = json.loads(label)
        for base_method, base_label in sorted(settings):
            base = json.loads(base_label)
            added = set(overrides) - set(base)
            contains_base = all(overrides.get(key) == value for key, value in base.items())
            if base_method != method or len(added) != 1 or not contains_base:
                continue
            deltas: dict[str, list[float]] = defaultdict(list)
            for key_method, key_label, task, seed in accuracy:
                base_key = (method, base_label, task, seed)
                if (key_method, key_label) == (method, label) and base_key in accuracy:
                    deltas[task].append(accuracy[(method, label, task, seed)] - accuracy[base_key])
            if deltas:
                pairs.append(
                    {
                        "method": method,
                        "added": _label({key: overrides[key] for key in added}),
                        "base": _label(base),
                        "deltas": {task: statistics.fmean(d) for task, d in deltas.items()},
                        "pairs": sum(len(d) for d in deltas.values()),
                    }
                )
    return pairs


def render_nested(pairs: list[dict]) -> list[str]:
    tasks = [t for t in TASK_ORDER if any(t in pair["deltas"] for pair in pairs)]
    lines = [
        "### One setting added to another experiment (paired difference, points)",
        "",
        "| method | added | on top of | " + " | ".join(tasks) + " | mean Δ | lower on | pairs |",
        "|---" * (len(tasks) + 6) + "|",
    ]
    for pair in pairs:
        cells = paired_cells(pair["deltas"], tasks, pair["pairs"])
        lines.append(f"| {pair['method']} | {pair['added']} | {pair['base']} | {cells} |")
    return [*lines, ""]


def render(rows: list[dict], source: Path, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    by_experiment: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_experiment[(row["method"], _label(row["overrides"]))].append(row)
    tasks = [t for t in TASK_ORDER if any(r["task"] == t for r in rows)]
    lines = [
        "## Hyperparameter experiments (paired with the default rows)",
        "",
        f"Generated by `python -m benchmarks.experiments_table` on {now:%Y-%m-%d %H:%M} UTC "
        f"from `{source}`. Cell: test accuracy % (paired difference to the default run of the "
        "same method on the same seeds, in points). Mean Δ: over the cells that have a pair. "
        "Pseudo-label acc: the final model on the labelled sample of the unlabelled pool, mean "
        "over tasks and seeds.",
        "",
        "| method | overrides | " + " | ".join(tasks) + " | mean Δ | pseudo-label acc | seeds |",
        "|---" * (len(tasks) + 5) + "|",
    ]
    for (method, label), group in sorted(by_experiment.items()):
        cells = {row["task"]: row for row in group}
        texts = []
        for task in tasks:
            row = cells.get(task)
            if row is None:
                texts.append("—")
            elif row["delta"] is None:
                texts.append(f"{100 * row['accuracy']:.1f}")
            else:
                texts.append(f"{100 * row['accuracy']:.1f} ({100 * row['delta']:+.1f})")
        deltas = [row["delta"] for row in group if row["delta"] is not None]
        mean = f"{100 * statistics.fmean(deltas):+.1f}" if deltas else "—"
        pseudo = [row["pseudo"] for row in group if row["pseudo"] is not None]
        pseudo_text = f"{100 * statistics.fmean(pseudo):.1f}" if pseudo else "—"
        seeds = sorted({s for row in group for s in row["seeds"]})
        lines.append(
            f"| {method} | {label} | " + " | ".join(texts) + f" | {mean} | {pseudo_text} | "
            f"{','.join(map(str, seeds))} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments_table")
    parser.add_argument("--results", type=Path, default=EXPERIMENT_RESULTS)
    parser.add_argument("--defaults", type=Path, default=ACCURACY_RESULTS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "experiments.md")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--k", type=int, default=30)
    args = parser.parse_args(argv)
    setting = {"backbone": args.backbone, "budget": args.budget, "k": args.k}
    experiments = [
        r
        for r in unique_records(read_records(args.results))
        if r["backbone"] == args.backbone and r["budget"] == args.budget and r["k"] == args.k
    ]
    defaults = select(unique_records(read_records(args.defaults)), **setting, unlabeled_cap=None)
    rows = paired_rows(experiments, defaults)
    if not rows:
        print(f"no experiment records in {args.results}")
        return 1
    text = render(rows, display_path(args.results))
    pairs = nested_pairs(experiments)
    if pairs:
        text += "\n" + "\n".join(render_nested(pairs))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} from {len(experiments)} experiment records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
