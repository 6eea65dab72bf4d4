"""Build the accuracy section of RESULTS.md from the results file (never typed by hand).

    python -m benchmarks.accuracy_table            # prints the section; --out FILE writes it

Only records of one setting (backbone, budget, K, unlabelled cap, no --set overrides) are
tabulated; experiments with overrides live in their own file and are summarised separately.
`python -m benchmarks.results_page` puts the section into RESULTS.md.
"""

import argparse
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.accuracy_records import TASK_ORDER, paired_by_task, paired_cells, select
from benchmarks.harness.methods import FULL_DATA, METHODS
from benchmarks.harness.records import (
    ACCURACY_RESULTS,
    date_span,
    display_path,
    read_records,
    unique_records,
)

F1_TASKS = ("sst-5", "trec")
UPPER = "upper bound"
LIST_METHODS = ("list", "list-no-reweight", "list-no-warmup")
# Rows whose history scores the labelled sample of the unlabelled pool after each phase.
PSEUDO_LABEL_METHODS = (
    "zero-shot",
    "prompt",
    *LIST_METHODS,
    "contrastive",
    "list-contrastive",
    "list-cv",
    "list-contrastive-cv",
)


@dataclass(frozen=True)
class Cell:
    """Mean and sample std over seeds of one (method, task)."""

    accuracy: float
    accuracy_std: float | None
    macro_f1: float
    macro_f1_std: float | None
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    holds: bool | None  # None: not enough rows yet
    detail: str


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def aggregate(records: list[dict]) -> dict[tuple[str, str], Cell]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["method"], record["task"])].append(record)
    cells = {}
    for key, group in groups.items():
        accuracies = [r["accuracy"] for r in group]
        f1s = [r["macro_f1"] for r in group]
        cells[key] = Cell(
            accuracy=statistics.fmean(accuracies),
            accuracy_std=_std(accuracies),
            macro_f1=statistics.fmean(f1s),
            macro_f1_std=_std(f1s),
            seeds=tuple(sorted(r["seed"] for r in group)),
        )
    return cells


def add_upper_bound(cells: dict[tuple[str, str], Cell], tasks: list[str]) -> dict[str, str]:
    """Per task the better full-data row (by mean accuracy) becomes the `upper bound` row."""
    chosen = {}
    for task in tasks:
        candidates = [m for m in FULL_DATA if (m, task) in cells]
        if candidates:
            best = max(candidates, key=lambda m: cells[(m, task)].accuracy)
            cells[(UPPER, task)] = cells[(best, task)]
            chosen[task] = best
    return chosen


def _task_mean(cells, method: str, tasks: list[str]) -> float | None:
    values = [cells[(method, t)].accuracy for t in tasks if (method, t) in cells]
    return statistics.fmean(values) if len(values) == len(tasks) and tasks else None


def targets(cells: dict[tuple[str, str], Cell], tasks: list[str]) -> list[Target]:
    """The issue's four targets, each over the tasks where both rows exist."""
    result = []
    for other, margin in (("prompt", 3.0), ("classic", 5.0)):
        common = [t for t in tasks if ("list", t) in cells and (other, t) in cells]
        name = f"list >= {other} + {margin:g} points (mean over tasks)"
        if not common:
            result.append(Target(name, "—", None, _missing("list", other)))
            continue
        gap = 100 * (_task_mean(cells, "list", common) - _task_mean(cells, other, common))
        result.append(Target(name, f"{gap:+.1f} points", gap >= margin, _coverage(common, tasks)))
    common = [t for t in tasks if ("list", t) in cells and (UPPER, t) in cells]
    name = "list >= 0.95 x full-data upper bound (ratio averaged over tasks)"
    if common:
        ratio = statistics.fmean(
            cells[("list", t)].accuracy / cells[(UPPER, t)].accuracy for t in common
        )
        result.append(Target(name, f"{ratio:.3f}", ratio >= 0.95, _coverage(common, tasks)))
    else:
        result.append(Target(name, "—", None, _missing("list", "full-data")))
    common = [t for t in tasks if ("list", t) in cells and ("zero-shot", t) in cells]
    name = "list > zero-shot on every task"
    if common:
        losing = [
            t for t in common if cells[("list", t)].accuracy <= cells[("zero-shot", t)].accuracy
        ]
        value = "all tasks" if not losing else "not on " + ", ".join(losing)
        result.append(Target(name, value, not losing, _coverage(common, tasks)))
    else:
        result.append(Target(name, "—", None, _missing("list", "zero-shot")))
    return result


def _missing(first: str, second: str) -> str:
    return f"needs {first} and {second} rows on a common task"


def _coverage(common: list[str], tasks: list[str]) -> str:
    return f"{len(common)}/{len(tasks)} tasks" + ("" if len(common) == len(tasks) else " (partial)")


def _pct(value: float, std: float | None) -> str:
    return f"{100 * value:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def _cell_text(cell: Cell | None, expected: int, f1: bool = False) -> str:
    if cell is None:
        return "—"
    text = _pct(cell.macro_f1, cell.macro_f1_std) if f1 else _pct(cell.accuracy, cell.accuracy_std)
    return text if len(cell.seeds) >= expected else f"{text} (n={len(cell.seeds)})"


def _rows(cells: dict[tuple[str, str], Cell]) -> list[str]:
    present = {method for method, _ in cells}
    ordered = [m for m in METHODS if m in present and m not in FULL_DATA]
    ordered += [m for m in FULL_DATA if m in present]
    return ordered + ([UPPER] if UPPER in present else [])


def _expected(method: str, expected: int) -> int:
    """Full-data rows are one training seed by design; only few-shot rows expect every seed."""
    return 1 if method in FULL_DATA or method == UPPER else expected


def accuracy_table(cells, tasks: list[str], expected: int) -> list[str]:
    lines = ["| method | " + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 2) + "|"]
    for method in _rows(cells):
        texts = [_cell_text(cells.get((method, t)), _expected(method, expected)) for t in tasks]
        mean = _task_mean(cells, method, tasks)
        lines.append(
            f"| {method} | "
            + " | ".join(texts)
            + f" | {'—' if mean is None else f'{100 * mean:.1f}'} |"
        )
    return lines


def f1_table(cells, tasks: list[str], expected: int) -> list[str]:
    shown = [t for t in F1_TASKS if t in tasks]
    lines = ["| method | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for method in _rows(cells):
        texts = [
            _cell_text(cells.get((method, t)), _expected(method, expected), f1=True) for t in shown
        ]
        lines.append(f"| {method} | " + " | ".join(texts) + " |")
    return lines


def cost_table(records: list[dict]) -> list[str]:
    """Per method: trainable parameters, stored adapter bytes and training wall time per job."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_method[record["method"]].append(record)
    lines = [
        "| method | jobs | trainable params | adapter bytes | train wall s/job (mean, max) "
        "| train CPU s/job | test scoring s/job |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in [m for m in METHODS if m in by_method]:
        group = by_method[method]
        params = _span([r["trainable_params"] for r in group])
        # SetFit stores no adapter: each of its tasks is a whole fine-tuned encoder
        stored = _span([r["adapter_bytes"] for r in group if r["adapter_bytes"] is not None])
        walls = [r["wall_s"] for r in group]
        evals = [r.get("eval_s", 0.0) for r in group]
        cpus = [r["cpu_s"] for r in group if "cpu_s" in r]
        cpu = f"{statistics.fmean(cpus):.0f} ({len(cpus)} jobs)" if cpus else "—"
        lines.append(
            f"| {method} | {len(group)} | {params} | {stored} | "
            f"{statistics.fmean(walls):.0f}, {max(walls):.0f} | {cpu} | "
            f"{statistics.fmean(evals):.0f} |"
        )
    return lines


def _span(values: list[int]) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def ablation_table(records: list[dict], tasks: list[str]) -> list[str]:
    """Each ablation minus `list` on the same task and seed: pairs cancel the seed's sample."""
    by_method: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for record in records:
        by_method[record["method"]][(record["task"], record["seed"])] = record["accuracy"]
    lines = [
        "| ablation | " + " | ".join(tasks) + " | mean Δ | lower on | pairs |",
        "|---" * (len(tasks) + 4) + "|",
    ]
    for method in LIST_METHODS[1:]:
        per_task, pairs = paired_by_task(by_method[method], by_method["list"])
        if per_task:
            lines.append(f"| {method} | {paired_cells(per_task, tasks, pairs)} |")
    return lines


def pseudo_label_table(records: list[dict], tasks: list[str]) -> list[str]:
    """Teacher/student accuracy on a labelled sample of the unlabelled pool, per session."""
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        if record["method"] in PSEUDO_LABEL_METHODS and record.get("history"):
            by_key[(record["method"], record["task"])].append(record)
    lines = [
        "| method | task | seeds | zero-shot / teacher (session 0) → after each session | test |",
        "|---|---|---|---|---|",
    ]
    for method in PSEUDO_LABEL_METHODS:
        for task in tasks:
            group = by_key.get((method, task))
            if not group:
                continue
            sessions = min(len(r["history"]) for r in group)
            steps = [
                statistics.fmean(r["history"][i]["evaluation_accuracy"] for r in group)
                for i in range(sessions)
            ]
            test = statistics.fmean(r["accuracy"] for r in group)
            chain = " → ".join(f"{100 * s:.1f}" for s in steps)
            lines.append(f"| {method} | {task} | {len(group)} | {chain} | {100 * test:.1f} |")
    return lines


DEFAULT_SETTING = {
    "backbone": "all-MiniLM-L6-v2",
    "budget": "fast",
    "k": 30,
    "unlabeled_cap": None,
}


def table_command(setting: dict, planned_seeds: list[int] | None = None) -> str:
    """The `accuracy_table` command line that tabulates `setting`."""
    flags = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in setting.items()
        if value != DEFAULT_SETTING[name]
    ]
    if planned_seeds:
        flags.append("--planned-seeds " + ",".join(map(str, planned_seeds)))
    return " ".join(["python -m benchmarks.accuracy_table", *flags])


def render(
    records: list[dict],
    setting: dict,
    source: Path,
    planned_seeds: list[int] | None = None,
) -> str:
    """The section; with `planned_seeds`, a cell with fewer seeds than planned is marked."""
    present = {r["task"] for r in records}
    tasks = [t for t in TASK_ORDER if t in present] + sorted(present - set(TASK_ORDER))
    seeds = sorted({r["seed"] for r in records if r["method"] not in FULL_DATA})
    expected = len(planned_seeds or seeds)
    planned = f" (planned: {', '.join(map(str, planned_seeds))})" if planned_seeds else ""
    cells = aggregate(records)
    chosen = add_upper_bound(cells, tasks)
    commands = sorted({r["command"] for r in records if r.get("command")})
    caps = sorted({r["n_unlabeled"] for r in records if r["n_unlabeled"]})
    out = [
        "## Accuracy: LiST vs baselines (few-shot, K = "
        f"{setting['k']}, {setting['backbone']}, budget `{setting['budget']}`)",
        "",
        f"Table: `{table_command(setting, planned_seeds)}`, from {len(records)} records in "
        f"`{source}` ({date_span(records)}). "
        f"Seeds: {', '.join(map(str, seeds)) or '—'}{planned}; a cell marked (n=…) has fewer "
        "seeds so far. "
        f"Unlabelled texts per LiST job: {_span(caps) if caps else '—'} "
        f"(cap: {setting['unlabeled_cap'] or 'none, all of the rest of the train pool'}). "
        "Accuracy in %, mean ± sample std over seeds, on the whole test set; last checkpoint, no "
        "dev set, no selection on test data. Commands that produced the records:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "### Test accuracy (%)",
        "",
        *accuracy_table(cells, tasks, expected),
        "",
    ]
    if chosen:
        out += [
            "Upper bound = per task the better of full-classic / full-prompt: "
            + ", ".join(f"{t}: {m}" for t, m in chosen.items())
            + ".",
            "",
        ]
    if any(t in tasks for t in F1_TASKS):
        out += ["### Macro-F1 (%)", "", *f1_table(cells, tasks, expected), ""]
    out += [
        "### Targets",
        "",
        "| target | value | holds | over |",
        "|---|---|---|---|",
        *[
            f"| {t.name} | {t.value} | {'—' if t.holds is None else ('yes' if t.holds else 'NO')} "
            f"| {t.detail} |"
            for t in targets(cells, tasks)
        ],
        "",
        "### Cost per job",
        "",
        *cost_table(records),
        "",
        "Wall time is the training job alone (zero-shot: building the model), on the shared "
        "2-core CPU under other load (see `load_avg` in the records); CPU s is the process's CPU "
        "time for the same span (recorded from a later harness version on), which does not depend "
        "on the load: with one thread it is roughly the wall time on an idle core. Test scoring "
        "is listed separately.",
        "",
        "### Ablations, paired with `list` (points; mean over the seeds both have)",
        "",
        *ablation_table(records, tasks),
        "",
        "### Pseudo-label accuracy (labelled sample of the unlabelled pool, reporting only)",
        "",
        *pseudo_label_table(records, tasks),
        "",
    ]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy_table", description=__doc__
    )
    parser.add_argument("--results", type=Path, default=ACCURACY_RESULTS)
    parser.add_argument("--out", type=Path, default=None, help="write here (default: print)")
    parser.add_argument("--backbone", default=DEFAULT_SETTING["backbone"])
    parser.add_argument("--budget", default=DEFAULT_SETTING["budget"])
    parser.add_argument("--k", type=int, default=DEFAULT_SETTING["k"])
    parser.add_argument("--unlabeled-cap", type=int, default=DEFAULT_SETTING["unlabeled_cap"])
    parser.add_argument(
        "--planned-seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=None,
        help="seeds the run is meant to cover (default: those recorded); fewer is marked n=…",
    )
    return parser


def section(results: Path, setting: dict, planned_seeds: list[int] | None = None) -> str | None:
    """The section for one setting of the records in `results`, or None without any."""
    records = select(unique_records(read_records(results)), **setting)
    # The other tuners' rows are the tuner table's (`benchmarks.tuners_table`).
    records = [r for r in records if r.get("tuner", "adapter") == "adapter"]
    if not records:
        return None
    return render(records, setting, display_path(results), planned_seeds)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setting = {
        "backbone": args.backbone,
        "budget": args.budget,
        "k": args.k,
        "unlabeled_cap": args.unlabeled_cap,
    }
    text = section(args.results, setting, args.planned_seeds)
    if text is None:
        print(f"no records for {setting} in {args.results}")
        return 1
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
