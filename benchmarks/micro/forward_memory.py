"""How the scripted serving forward's memory grows over batches of varied shapes, per precision.

    python -m benchmarks.micro.forward_memory --forwards 300

Why: on the CPU, oneDNN runs bf16 Linear layers and keeps state for every input shape it has
met, and a serving forward meets a new token count with almost every batch. Each variant runs
`--forwards` batches of 1-32 sst-2 test sentences over 1-32 of 32 task adapters (the same
seeded draws for every variant), one torch thread, in its own process so that one variant's
allocations do not carry over into the next. RSS is read before the first and after every
`--every` forwards. Variants: `fp32`, `bf16` (rounded Linear row counts, what the service
runs), and `bf16-unrounded` (the exact token counts, as before the rounding). The variants run
under the allocator the service would pick (`--allocator`, as `LISTSERVE_ALLOCATOR`: jemalloc
where installed). One record per variant to results/forward_memory.jsonl.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.harness.arguments import choice_list
from benchmarks.harness.records import RESULTS_DIR, append_record, date_span, git_commit, utc_now
from service.process.allocator import ALLOCATORS, active_allocator, preload_environment

RESULTS = RESULTS_DIR / "forward_memory.jsonl"
VARIANTS = ("fp32", "bf16", "bf16-unrounded")


def rss_mb() -> float:
    """This process's resident set in MiB."""
    return psutil.Process().memory_info().rss / 2**20


def measure(variant: str, args: argparse.Namespace) -> dict:
    """Run one variant in this process; RSS samples and time."""
    import torch

    from benchmarks.harness.backbones import resolve_backbone
    from benchmarks.harness.workload import encode_rows_for, make_models, test_sentences
    from list_core.backbone import load_backbone
    from list_core.inference import forward_encoded
    from list_core.serving.speedups import serving_backbone

    torch.set_num_threads(1)
    backbone = load_backbone(resolve_backbone(args.backbone), "cpu")
    twin = serving_backbone(backbone, variant.removesuffix("-unrounded"), scripted=True)
    if variant.endswith("-unrounded"):
        twin.scripted.round_linear_rows = False
    models = make_models(backbone, 32, args.bottleneck)
    texts = sorted(test_sentences(2000), key=len)
    rng = random.Random(args.seed)
    samples = [round(rss_mb(), 1)]
    started = time.perf_counter()
    for forward in range(1, args.forwards + 1):
        count = rng.randint(1, 32)
        chosen = [models[i] for i in rng.sample(range(32), rng.randint(1, count))]
        rows = [chosen[i % len(chosen)] for i in range(count)]
        with torch.no_grad():
            forward_encoded(twin, rows, encode_rows_for(rows, rng.sample(texts, count)))
        if forward % args.every == 0:
            samples.append(round(rss_mb(), 1))
    return {
        "variant": variant,
        "allocator": active_allocator(),
        "forwards": args.forwards,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_start_mb": samples[0],
        "rss_end_mb": samples[-1],
        "rss_growth_mb": round(samples[-1] - samples[0], 1),
        "rss_samples_mb": samples,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--forwards", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="forwards between RSS samples")
    parser.add_argument("--bottleneck", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=choice_list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--allocator", choices=ALLOCATORS, default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", choices=VARIANTS, help=argparse.SUPPRESS)  # a child's variant
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    context = {
        "commit": git_commit(),
        "command": "python -m benchmarks.micro.forward_memory " + " ".join(argv),
        "date": utc_now(),
    }
    for variant in args.variants:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.micro.forward_memory", *argv, "--only", variant],
            env=preload_environment(args.allocator, os.environ) or os.environ,
            capture_output=True,
            text=True,
            check=True,
        )
        record = {**json.loads(child.stdout.strip().splitlines()[-1]), **context}
        append_record(args.out, record)
        print(json.dumps({k: v for k, v in record.items() if k != "rss_samples_mb"}), flush=True)


def render(records: list[dict]) -> str:
    """RESULTS.md's section: the newest record of each variant."""
    newest = {r["variant"]: r for r in records}
    shown = [newest[v] for v in VARIANTS if v in newest]
    commands = sorted({r["command"] for r in shown})
    lines = [
        "## Memory of the scripted serving forward over varied batches (`forward_memory`)",
        "",
        f"Records: `benchmarks/results/forward_memory.jsonl`, {date_span(shown)} (the newest of "
        "each variant). Batches of 1-32 sst-2 sentences over 1-32 of 32 adapters, one torch "
        "thread, each variant in its own process; `bf16` rounds Linear row counts as the service "
        "does, `bf16-unrounded` runs the exact token counts. Commands:",
        "",
        *[f"    {command}" for command in commands],
        "",
        "| variant | allocator | forwards | RSS start MB | RSS end MB | growth MB | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in shown:
        lines.append(
            f"| {r['variant']} | {r['allocator']} | {r['forwards']} | {r['rss_start_mb']} "
            f"| {r['rss_end_mb']} | {r['rss_growth_mb']:+} | {r['seconds']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
