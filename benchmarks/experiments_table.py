"""Summarise hyperparameter experiments (`--set`) against the default rows, seed by seed.

    python -m benchmarks.experiments_table     # prints the section; --out FILE writes it

Each experiment (method + overrides) is compared with the default run of the same method on the
same tasks and seeds (same labelled draw), so a difference is the change's effect, not the
draw's. Test accuracy is what is shown; the experiments only propose defaults, and any adopted
default has to be re-run through the main table on all tasks and seeds.
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.harness.accuracy_records import TASK_ORDER, paired_by_task, paired_cells, select
from benchmarks.harness.records import (
    ACCURACY_RESULTS,
    RESULTS_DIR,
    date_span,
    display_path,
    read_records,
    unique_records,
)

EXPERIMENT_RESULTS = RESULTS_DIR / "experiments.jsonl"
DEFAULT_SETTING = {"backbone": "all-MiniLM-L6-v2", "budget": "fast", "k": 30}
AUTO_SETTING = {**DEFAULT_SETTING, "budget": "auto"}


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
    by_setting: dict[tuple[str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    for r in experiments:
        label = json.dumps(r["overrides"], sort_keys=True)
        by_setting[(r["method"], label)][(r["task"], r["seed"])] = r["accuracy"]
    pairs = []
    for (method, label), results in sorted(by_setting.items()):
        overrides = json.loads(label)
        for (base_method, base_label), base_results in sorted(by_setting.items()):
            base = json.loads(base_label)
            added = set(overrides) - set(base)
            contains_base = all(overrides.get(key) == value for key, value in base.items())
            if base_method != method or len(added) != 1 or not contains_base:
                continue
            deltas, count = paired_by_task(results, base_results)
            if deltas:
                pairs.append(
                    {
                        "method": method,
                        "added": _label({key: overrides[key] for key in added}),
                        "base": _label(base),
                        "deltas": deltas,
                        "pairs": count,
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


def render(rows: list[dict], source: Path, dated: str = "undated", budget: str = "fast") -> str:
    """The experiments table: one row per (method, overrides), a cell per task; `dated` says
    when the experiments ran (`date_span`), `budget` which budget's runs they are."""
    by_experiment: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_experiment[(row["method"], _label(row["overrides"]))].append(row)
    tasks = [t for t in TASK_ORDER if any(r["task"] == t for r in rows)]
    lines = [
        f"## Hyperparameter experiments, budget `{budget}` (paired with the default rows)",
        "",
        f"Table: `python -m benchmarks.experiments_table`, from `{source}` ({dated}). Cell: "
        "test accuracy % (paired difference to the default run of the "
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


def section(results: Path, defaults: Path, setting: dict) -> str | None:
    """The section for the experiments in `results` of one setting (backbone, budget, K),
    paired with that setting's default rows in `defaults`; None without any."""
    experiments = [
        r
        for r in unique_records(read_records(results))
        if all(r[name] == value for name, value in setting.items())
    ]
    baseline = select(unique_records(read_records(defaults)), **setting, unlabeled_cap=None)
    rows = paired_rows(experiments, baseline)
    if not rows:
        return None
    text = render(rows, display_path(results), date_span(experiments), setting["budget"])
    pairs = nested_pairs(experiments)
    if pairs:
        text += "\n" + "\n".join(render_nested(pairs))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments_table")
    parser.add_argument("--results", type=Path, default=EXPERIMENT_RESULTS)
    parser.add_argument("--defaults", type=Path, default=ACCURACY_RESULTS)
    parser.add_argument("--out", type=Path, default=None, help="write here (default: print)")
    parser.add_argument("--backbone", default=DEFAULT_SETTING["backbone"])
    parser.add_argument("--budget", default=DEFAULT_SETTING["budget"])
    parser.add_argument("--k", type=int, default=DEFAULT_SETTING["k"])
    args = parser.parse_args(argv)
    setting = {"backbone": args.backbone, "budget": args.budget, "k": args.k}
    text = section(args.results, args.defaults, setting)
    if text is None:
        print(f"no experiment records in {args.results}")
        return 1
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
