"""Micro-benchmark: what batching saves inside the process, the ceiling of the serving a/b.

    python -m benchmarks.micro.batching_gain --draws 15

The serving sweep's a/b compares mixed batching with one forward per request over HTTP. This
times the in-process part of both on the same rows: each draw takes `--rows` sentences from
the load generator's pool (the sst-2 test set) over as many distinct task adapters, built as
the serving sweep seeds them, and scores them as the batcher does (one tokenizer call, rows
sorted by length, one `forward_encoded` through the service's serving twin at `--precision`
with its CPU apply mode) and one row at a time (a tokenizer call and a forward per row). Both
ways interleave on one torch thread, as each model thread of the server runs. `gain` is the
one-by-one CPU over the batched CPU of the same rows: what a/b could reach if HTTP, queueing
and the event loop cost nothing. One record per batch size to results/batching_gain.jsonl.
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    cpu_model,
    date_span,
    git_commit,
    utc_now,
)
from benchmarks.harness.workload import make_models, test_sentences
from list_core.adapters import resolve_apply_mode
from list_core.backbone import Backbone, load_backbone
from list_core.inference import Row, encode_rows, forward_encoded
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel

RESULTS = RESULTS_DIR / "batching_gain.jsonl"


def score_cpu_seconds(backbone: Backbone, rows: list[Row], apply_mode: str) -> float:
    """This thread's CPU seconds to tokenise and score `rows` in one forward."""
    started = time.thread_time()
    forward_encoded(backbone, [row.model for row in rows], encode_rows(rows), apply_mode=apply_mode)
    return time.thread_time() - started


def draw_rows(models: list[TaskModel], texts: list[str], size: int, rng: random.Random):
    """`size` random sentences over the first `size` adapters, shortest first (the batcher's
    order within a chunk)."""
    drawn = sorted(rng.sample(texts, size), key=len)
    return [Row(model, text) for model, text in zip(models[:size], drawn, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--rows", default="8,16,32", help="rows per batch, comma-separated")
    parser.add_argument("--draws", type=int, default=15, help="random batches per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed draws per size")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    backbone = load_backbone(resolve_backbone(args.backbone), device="cpu")
    twin = serving_backbone(backbone, args.precision, scripted=True)
    apply_mode = resolve_apply_mode("auto", twin.device, twin.scripted is not None)
    sizes = [int(size) for size in args.rows.split(",")]
    models = make_models(backbone, max(sizes), bottleneck=32)
    texts = test_sentences()
    rng = random.Random(args.seed)
    commit = git_commit()
    with torch.no_grad():
        for size in sizes:
            batched, one_by_one, tokens = [], [], []
            for draw in range(args.warmup + args.draws):
                rows = draw_rows(models, texts, size, rng)
                batch_cpu = score_cpu_seconds(twin, rows, apply_mode)
                single_cpu = sum(score_cpu_seconds(twin, [row], apply_mode) for row in rows)
                if draw >= args.warmup:
                    batched.append(batch_cpu)
                    one_by_one.append(single_cpu)
                    tokens.extend(len(item.input_ids) for item in encode_rows(rows))
            per_draw = [s / b for s, b in zip(one_by_one, batched, strict=True)]
            record = {
                "benchmark": "batching_gain",
                "rows": size,
                "draws": args.draws,
                "mean_tokens": round(statistics.mean(tokens), 1),
                "batched_cpu_ms_p50": round(statistics.median(batched) * 1000, 2),
                "one_by_one_cpu_ms_p50": round(statistics.median(one_by_one) * 1000, 2),
                "gain": round(sum(one_by_one) / sum(batched), 3),
                "gain_per_draw_min": round(min(per_draw), 3),
                "gain_per_draw_max": round(max(per_draw), 3),
                "precision": twin.precision,
                "apply_mode": apply_mode,
                "torch_threads": torch.get_num_threads(),
                "cpu_model": cpu_model(),
                "backbone": backbone.fingerprint,
                "commit": commit,
                "command": "python -m benchmarks.micro.batching_gain "
                + " ".join(argv or sys.argv[1:]),
                "date": utc_now(),
            }
            append_record(args.out, record)
            print(json.dumps(record), flush=True)


def render(records: list[dict]) -> str:
    """RESULTS.md's section: the newest record of each (precision, rows)."""
    newest = {(r["precision"], r["rows"]): r for r in records}
    shown = sorted(newest.values(), key=lambda r: (r["precision"] != "bf16", r["rows"]))
    commands = sorted({r["command"] for r in shown})
    cpus = sorted({r["cpu_model"] for r in shown})
    lines = [
        "## What batching saves in process (`batching_gain`)",
        "",
        f"Records: `benchmarks/results/batching_gain.jsonl`, {date_span(shown)}, on "
        f"{', '.join(cpus)}. Random draws of the load generator's sentences over as many "
        "adapters, scored one tokenizer call and one forward per draw (batched) or per row, one "
        "torch thread; gain = CPU row by row over CPU batched, the ceiling of the sweep's a/b. "
        "Commands:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "| precision | rows | mean tokens | batched CPU ms | row by row CPU ms | gain (per draw) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in shown:
        lines.append(
            f"| {r['precision']} | {r['rows']} | {r['mean_tokens']} | {r['batched_cpu_ms_p50']} "
            f"| {r['one_by_one_cpu_ms_p50']} | {r['gain']:.2f} ({r['gain_per_draw_min']:.2f}-"
            f"{r['gain_per_draw_max']:.2f}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
