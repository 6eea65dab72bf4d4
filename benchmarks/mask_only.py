"""Micro-benchmark: the served forward with its last layer on every token, or on one per row.

    python -m benchmarks.mask_only --repeats 20

An MLM prompt head reads one token per row, the mask, so the service asks the scripted forward
for those tokens only: the last layer still takes keys and values from every token, but its
query, attention output, adapters, norms and FFN run on one token per row
(`ScriptedEncoder.__call__`'s `outputs`). This times batches of `--rows` sst-2 test sentences
(shortest first, as the batcher orders a chunk; one draw per size) over as many distinct task
adapters, through the service's serving twin at `--precision` (the `auto` one by default) with
`group` adapters, both ways, interleaved, on one torch thread. The cost depends on the
backbone's shape only, not on its weights or head, so the offline MiniLM (6 layers) serves.
One record per row count and variant to results/mask_only.jsonl: median CPU ms per batch, and
`cpu_vs_all`, that over the every-token forward of the same batch.
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.adapter_apply import (
    DEFAULT_BACKBONE,
    encode_rows_for,
    make_models,
    read_texts,
    resolve_backbone,
)
from benchmarks.records import RESULTS_DIR, append_record, cpu_model, git_commit
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.serving_speedups import serving_backbone

RESULTS = RESULTS_DIR / "mask_only.jsonl"
VARIANTS = ("all-tokens", "one-per-row")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--rows", default="1,8,32", help="rows per batch, comma-separated")
    parser.add_argument("--bottleneck", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    backbone = load_backbone(resolve_backbone(args.backbone), device="cpu")
    twin = serving_backbone(backbone, args.precision, scripted=True)
    if twin.scripted is None:
        parser.error(f"{args.backbone} has no scripted serving forward to time")
    sizes = [int(size) for size in args.rows.split(",")]
    pool = make_models(backbone, max(sizes), args.bottleneck)
    texts = read_texts(512)
    rng = random.Random(args.seed)
    batches = {}
    for size in sizes:
        drawn = sorted(rng.sample(texts, size), key=len)
        models = [pool[i % size] for i in range(size)]
        encoded = encode_rows_for(models, drawn)
        batch = collate(encoded, backbone.tokenizer.pad_token_id, backbone.device)
        packed = twin.scripted.pack([m.adapters for m in models], batch.lengths, "group")
        last_tokens = [length - 2 for length in batch.lengths]  # a prompt's mask sits near the end
        batches[size] = (batch, packed, last_tokens)

    timings: dict[tuple[int, str], list[float]] = {(s, v): [] for s in sizes for v in VARIANTS}
    with torch.no_grad():
        for repeat in range(args.warmup + args.repeats):
            for size, (batch, packed, last_tokens) in batches.items():
                for variant in VARIANTS:
                    outputs = last_tokens if variant == "one-per-row" else None
                    started = time.thread_time()
                    twin.scripted(batch.input_ids, batch.attention_mask, packed, outputs=outputs)
                    if repeat >= args.warmup:
                        timings[(size, variant)].append(time.thread_time() - started)

    commit = git_commit()
    for size, (batch, _, _) in batches.items():
        every_token = statistics.median(timings[(size, "all-tokens")])
        for variant in VARIANTS:
            cpu = statistics.median(timings[(size, variant)])
            record = {
                "benchmark": "mask_only",
                "variant": variant,
                "rows": size,
                "distinct_adapters": size,
                "mean_tokens": round(sum(batch.lengths) / size, 1),
                "layers": len(backbone.encoder.encoder.layer),
                "repeats": args.repeats,
                "cpu_ms_p50": round(cpu * 1000, 2),
                "cpu_vs_all": round(cpu / every_token, 3),
                "precision": twin.precision,
                "torch_threads": torch.get_num_threads(),
                "cpu_model": cpu_model(),
                "backbone": backbone.fingerprint,
                "commit": commit,
                "command": "python -m benchmarks.mask_only " + " ".join(argv or sys.argv[1:]),
            }
            append_record(args.out, record)
            print(json.dumps(record))


if __name__ == "__main__":
    main()
