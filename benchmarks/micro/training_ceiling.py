"""Micro-benchmark: the floor under a `fast` LiST job's training time, its forward+backward
steps alone.

    python -m benchmarks.micro.training_ceiling

A `fast` job on 30 labels trains 150 teacher steps on 8 labelled rows, then per session 150
steps on 16 unlabelled rows and 50 on 8 labelled ones. Whatever else a job does (the teacher's
pseudo-labels, meta re-weighting, optimizer steps, evaluation reports) adds to the cost of
those forward+backward passes through the frozen encoder, which no speed-up of the loop
around them removes. This times exactly those passes (same data as `benchmarks.fast_budget`:
sst-2, seed 1, 2,000 unlabelled texts; a fresh student, no optimizer step) for each
`--speedups` and thread count, one record each to results/training_ceiling.jsonl.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.fewshot import draw_split, load_task
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    cpu_model,
    git_commit,
    load_avg,
    utc_now,
)
from benchmarks.harness.speedups import parse_speedups, speedups_name
from list_core.backbone import load_backbone
from list_core.hyperparams import resolve_hyperparameters
from list_core.task_model import TaskModel
from list_core.training_forwards import TrainingForwards
from list_core.tuners.registry import tuner_config

RESULTS = RESULTS_DIR / "training_ceiling.jsonl"


def step_batches(hp, n_labeled: int, n_unlabeled: int, generator: torch.Generator):
    """(labelled?, row indices) of every forward+backward of the schedule, in order."""
    batches = []
    for _ in range(hp.teacher_steps):
        batches.append((True, _labeled(n_labeled, hp.teacher_batch, generator)))
    for _ in range(hp.sessions):
        for _ in range(hp.unlabeled_steps):
            batches.append((False, _unlabeled(n_unlabeled, hp.unlabeled_batch, generator)))
        for _ in range(hp.labeled_steps):
            batches.append((True, _labeled(n_labeled, hp.labeled_batch, generator)))
    return batches


def _labeled(count: int, size: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(count, generator=generator)[: min(size, count)].tolist()


def _unlabeled(count: int, size: int, generator: torch.Generator) -> list[int]:
    return torch.randint(count, (size,), generator=generator).tolist()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument(
        "--speedups", default="none;all", help="`;`-separated values of accuracy's --speedups"
    )
    parser.add_argument("--threads", default="1,2", help="torch threads, comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    backbone = load_backbone(resolve_backbone(args.backbone), "cpu")
    task = load_task("sst-2")
    split = draw_split(task.train, task.spec.labels, 30, 1, 2000)
    hp = resolve_hyperparameters({"budget": "fast", "seed": 1}, 30, 2000, backbone.device, "list")
    config = tuner_config("adapter", hp, backbone)
    targets = torch.tensor([task.spec.labels.index(e.label) for e in split.labeled])
    commit = git_commit()
    for threads in [int(t) for t in args.threads.split(",")]:
        for text in args.speedups.split(";"):
            speedups = parse_speedups(text)
            torch.set_num_threads(threads)
            generator = torch.Generator().manual_seed(1)
            student = TaskModel(backbone, task.spec, "list", config, hp.max_length, generator)
            student.train()
            forwards = TrainingForwards(backbone, speedups)
            labeled = student.encode([e.text for e in split.labeled], [None] * len(targets))
            texts = split.unlabeled_texts()
            pool = student.encode(texts, [None] * len(texts))
            batches = step_batches(hp, len(labeled), len(pool), generator)
            load_before = load_avg()
            started, cpu_started = time.perf_counter(), time.process_time()
            for is_labeled, indices in batches:
                rows = [(labeled if is_labeled else pool)[i] for i in indices]
                logits = forwards.logits(student, rows)
                wanted = targets[indices] if is_labeled else logits.argmax(-1)
                F.cross_entropy(logits, wanted).backward()
                student.zero_grad(set_to_none=True)
            record = {
                "benchmark": "training_ceiling",
                "speedups": speedups_name(speedups),
                "training_precision": forwards.precision,
                "torch_threads": threads,
                "steps": len(batches),
                "rows": sum(len(indices) for _, indices in batches),
                "cpu_s": round(time.process_time() - cpu_started, 2),
                "wall_s": round(time.perf_counter() - started, 2),
                "load_avg": [load_before, load_avg()],
                "cpu_model": cpu_model(),
                "backbone": backbone.fingerprint,
                "commit": commit,
                "command": "python -m benchmarks.micro.training_ceiling "
                + " ".join(argv if argv is not None else sys.argv[1:]),
                "date": utc_now(),
            }
            append_record(args.out, record)
            print(json.dumps(record), flush=True)


def render(records: list[dict]) -> str:
    """RESULTS.md's section: the newest record of each (speed-ups, threads)."""
    newest = {(r["speedups"], r["torch_threads"]): r for r in records}
    shown = sorted(newest.values(), key=lambda r: (r["torch_threads"], r["speedups"] != "none"))
    commands = sorted({r["command"] for r in shown})
    lines = [
        "## The floor under training time: a `fast` job's forward+backward steps alone",
        "",
        f"Records: `benchmarks/results/training_ceiling.jsonl`, on {shown[0]['cpu_model']}. "
        f"The {shown[0]['steps']} forward+backward passes of a `fast` LiST job's schedule "
        "(150 teacher steps on "
        "8 labelled rows, then per session 150 on 16 unlabelled and 50 on 8 labelled rows; the "
        "fast_budget data), with no pseudo-labels, re-weighting, optimizer or evaluation: what "
        "a job costs at least, whatever the loop around them does. Commands:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "| speed-ups | training precision | torch threads | rows | CPU s | wall s | load avg |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in shown:
        load = ", ".join(f"{value:.1f}" for value in r["load_avg"])
        lines.append(
            f"| {r['speedups']} | {r['training_precision']} | {r['torch_threads']} | {r['rows']} "
            f"| {r['cpu_s']:.0f} | {r['wall_s']:.0f} | {load} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
