"""What the optional serving speed-ups (int8, bf16, torch.compile) change, on the benchmark data.

    python -m benchmarks.serving_precision --tasks sst-2,trec --seed 1 --threads 2

Per task: train one `prompt` adapter on K labels (fp32, as the service trains), then score the
whole test set with the fp32 backbone and with each serving twin of it. Each record holds the
test accuracy, macro-F1, the share of predictions equal to fp32's, and test rows/s as a ratio
to fp32 in the same run (variants are timed in turns and the best round kept: this machine is
shared). `--variants` picks what to measure (fp32 always runs as the reference). Records:
benchmarks/results/serving_precision.jsonl, one per (task, variant); a rerun skips tasks
already recorded with the same settings unless `--rerun` is given (the table then shows each
task's newest records). Each run ends by printing the table of the records (its section of
RESULTS.md, rebuilt by `python -m benchmarks.results_page`); `--table` only prints it.
"""

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness.arguments import choice_list, parse_overrides
from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.fewshot import DATA_DIR, Task, draw_split, load_task, task_names
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    date_span,
    display_path,
    git_commit,
    read_records,
    utc_now,
)
from benchmarks.harness.scoring import predict_labels, score
from list_core.backbone import Backbone, load_backbone
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from list_core.training import train_task

RESULTS = RESULTS_DIR / "serving_precision.jsonl"
# name: (precision, torch.compile, scripted forward). `bf16+scripted` is what the service serves
# by default on a CPU with native bf16 (`auto` precision, scripted forward, rounded Linear rows).
VARIANTS: dict[str, tuple[str, bool, bool]] = {
    "fp32": ("fp32", False, False),
    "int8": ("int8", False, False),
    "bf16": ("bf16", False, False),
    "fp32+compile": ("fp32", True, False),
    "bf16+scripted": ("bf16", False, True),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving_precision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", help="comma list (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per variant")
    parser.add_argument(
        "--variants",
        type=choice_list(VARIANTS),
        default=list(VARIANTS),
        help="comma list to measure and record (fp32 always runs as the reference, and is "
        "recorded when a task has no fp32 record yet)",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="measure recorded tasks again (the table shows each task's newest records)",
    )
    return parser


def train_adapter(backbone: Backbone, task: Task, args: argparse.Namespace) -> TaskModel:
    split = draw_split(task.train, task.spec.labels, args.k, args.seed)
    hyperparameters = {"budget": args.budget, "seed": args.seed, **args.overrides}
    result = train_task(
        backbone, task.spec, list(split.labeled), [], "prompt", hyperparameters=hyperparameters
    )
    return result.model


def measure_task(
    backbone: Backbone, twins: dict[str, Backbone], task: Task, args: argparse.Namespace
) -> list[dict]:
    """Score and time every variant on the task's whole test set."""
    model = train_adapter(backbone, task, args)
    for twin in twins.values():
        predict_labels(twin, model, task.test[:128])
    best: dict[str, float] = {}
    predicted: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, twin in twins.items():
            started = time.perf_counter()
            predicted[name] = predict_labels(twin, model, task.test)
            elapsed = time.perf_counter() - started
            best[name] = min(best.get(name, elapsed), elapsed)
    reference = predicted["fp32"]
    records = []
    for name in twins:
        same = sum(a == b for a, b in zip(predicted[name], reference, strict=True))
        records.append(
            {
                "task": task.name,
                "variant": name,
                **score(task.test, predicted[name], task.spec.labels),
                "agreement_with_fp32": same / len(reference),
                "rows_per_s": len(task.test) / best[name],
                "speedup_vs_fp32": best["fp32"] / best[name],
                "n_test": len(task.test),
            }
        )
    return records


def run(args: argparse.Namespace) -> None:
    names = args.tasks.split(",") if args.tasks else task_names(args.data_dir)
    setting = {
        "seed": args.seed,
        "k": args.k,
        "budget": args.budget,
        "backbone": args.backbone,
        "overrides": args.overrides,
    }
    recorded: dict[str, set[str]] = {}
    for record in read_records(args.out):
        if {k: record.get(k) for k in setting} == setting:
            recorded.setdefault(record["task"], set()).add(record["variant"])
    done = set() if args.rerun else {t for t, v in recorded.items() if v >= set(args.variants)}
    backbone = load_backbone(resolve_backbone(args.backbone), "cpu")
    measured = ["fp32", *(name for name in args.variants if name != "fp32")]
    twins = {name: serving_backbone(backbone, *VARIANTS[name]) for name in measured}
    command = "python -m benchmarks.serving_precision " + shlex.join(args.argv)
    commit = git_commit()
    for name in names:
        if name in done:
            print(f"skip {name} (already recorded)", flush=True)
            continue
        for record in measure_task(backbone, twins, load_task(name, args.data_dir), args):
            if (
                record["variant"] not in args.variants
                and record["variant"] in recorded.get(name, set())
                and not args.rerun
            ):
                continue  # the reference, already recorded for this task
            record.update(
                setting,
                threads=args.threads,
                load_avg=round(os.getloadavg()[0], 2),
                commit=commit,
                command=command,
                date=utc_now(),
            )
            append_record(args.out, record)
            print(
                f"{name} {record['variant']}: acc={record['accuracy']:.4f} "
                f"agree={record['agreement_with_fp32']:.3f} x{record['speedup_vs_fp32']:.2f}",
                flush=True,
            )


def render(records: list[dict], source: Path) -> str:
    """Per variant: accuracy per task, mean accuracy change against fp32, agreement and speed
    ratio, from each task and variant's newest record."""
    by_key = {(r["task"], r["variant"]): r for r in records}  # the newest of each
    records = list(by_key.values())
    tasks = sorted({r["task"] for r in records})
    commands = sorted({r["command"] for r in records})
    lines = [
        "## Serving precision in process: int8, bf16 and torch.compile on the frozen backbone",
        "",
        f"Records: `{display_path(source)}`, {date_span(records)}. A `prompt` adapter per task "
        f"(K = 30, seed {records[0]['seed']}, budget "
        f"`{records[0]['budget']}`, trained in fp32) scored on the whole test set by each serving "
        "twin. Accuracy in %; Δ and speed are against fp32 on the same task in the same run; "
        "speed is test rows/s in batches of 64 (best of the timed rounds). Commands:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "| variant | " + " | ".join(tasks) + " | mean Δ acc | agreement with fp32 | speed ×fp32 |",
        "|---|" + "---|" * len(tasks) + "---:|---:|---:|",
    ]
    for variant in VARIANTS:
        rows = [by_key.get((task, variant)) for task in tasks]
        present = [(row, by_key[(row["task"], "fp32")]) for row in rows if row is not None]
        if not present:
            continue
        cells = ["—" if row is None else f"{100 * row['accuracy']:.1f}" for row in rows]
        delta = sum(r["accuracy"] - f["accuracy"] for r, f in present) / len(present)
        agreement = sum(r["agreement_with_fp32"] for r, _ in present) / len(present)
        speed = sum(r["speedup_vs_fp32"] for r, _ in present) / len(present)
        lines.append(
            f"| {variant} | " + " | ".join(cells) + f" | {100 * delta:+.1f} | "
            f"{100 * agreement:.1f}% | {speed:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.overrides = parse_overrides(args.overrides)
    if not args.table:
        previous = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        try:
            run(args)
        finally:
            torch.set_num_threads(previous)
    records = read_records(args.out)
    if records:
        print(render(records, args.out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
