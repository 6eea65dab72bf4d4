"""Micro-benchmark: apply per-row adapters by gathered weights (one bmm) or by grouping rows,
in the eager forward or the scripted one.

    python -m benchmarks.micro.adapter_apply --repeats 30 --threads 1
    python -m benchmarks.micro.adapter_apply --repeats 10 --threads 1 --contended

One batch of `--rows` texts (sst-2 test sentences, ordered by length as the batcher orders a
chunk) runs through the shared backbone with its rows spread round-robin over 1, 8 and 32
distinct task adapters, under `MixedAdapterPlan` "gather" and "group" (list_core/adapters.py) on
the eager forward and on the scripted forward (list_core/serving/scripted.py), plus the bare
backbone as a floor. The scripted forward runs at the service's serving precision
(`--precision`, default `auto`), as `scripted-packed-<apply mode>` with every Linear on a
weight prepacked for oneDNN and each FFN's first Linear and GELU in one oneDNN call, as
`scripted-fused-<apply mode>` with the fused call on plain weights (both skipped where oneDNN
has no such calls: bf16 without its bf16 kernels) and as `scripted-unfused-<apply mode>` with
plain weights and a separate GELU.
(Records of commit `5944d16` and before name `scripted-<apply mode>` the fused forward, then
the CPU's only one; records of commit `53702d7` name `scripted-generic-*` a forward that also
ran attention as float32 matmuls, taken out again.) Repetitions of all settings are
interleaved so a noisy shared machine slows every setting alike; the minimum batch wall time,
the median CPU time of the timing thread (robust to other processes on a shared machine when
torch uses one thread) and the derived rows/s are reported; `served` marks the forward the
service runs on a CPU by default.
`--contended` keeps a pure-Python thread busy meanwhile, as a server's event loop is: wall time
then shows what each forward loses waiting for the GIL. One JSON record per setting goes to
results/adapter_apply.jsonl.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.contention import busy_python_thread
from benchmarks.harness.records import RESULTS_DIR, append_record, cpu_model, git_commit, utc_now
from benchmarks.harness.workload import encode_rows_for, make_models, test_sentences
from list_core.adapters import AUTO_APPLY_MODE, adapter_plan, resolve_apply_mode
from list_core.backbone import Backbone, load_backbone
from list_core.batching import collate
from list_core.inference import forward_encoded
from list_core.serving.capabilities import onednn_supports
from list_core.serving.scripted import ScriptedEncoder
from list_core.serving.speedups import serving_backbone

RESULTS = RESULTS_DIR / "adapter_apply.jsonl"
MODES = (
    "gather",
    "group",
    "scripted-packed-gather",
    "scripted-packed-group",
    "scripted-fused-gather",
    "scripted-fused-group",
    "scripted-unfused-gather",
    "scripted-unfused-group",
)


def time_batch(
    backbone, twins: dict[str, Backbone], models, encoded, mode: str | None
) -> tuple[float, float]:
    """(wall, this thread's CPU) seconds for one forward; mode None = bare backbone, no
    adapters; `<twin>-<apply mode>` = the twin of that name (`scripted_twins`)."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    if mode is None:
        batch = collate(encoded, backbone.tokenizer.pad_token_id, backbone.device)
        with torch.no_grad(), adapter_plan(None):
            backbone.hidden_states(batch.input_ids, batch.attention_mask)
    elif mode.startswith("scripted-"):
        forward, _, apply_mode = mode.rpartition("-")
        forward_encoded(twins[forward], models, encoded, apply_mode=apply_mode)
    else:
        forward_encoded(backbone, models, encoded, apply_mode=mode)
    return time.perf_counter() - started, time.thread_time() - cpu_started


# The scripted forward's variants: (fused GELU, prepacked weights) of each.
FORWARDS = {
    "scripted-packed": (True, True),
    "scripted-fused": (True, False),
    "scripted-unfused": (False, False),
}


def scripted_twins(backbone: Backbone, precision: str) -> tuple[dict[str, Backbone], str]:
    """The serving twin at `precision` with its scripted forward built as each of `FORWARDS`,
    and the mode the service serves on a CPU by default. The served variant is the service's
    own twin as built; only the others are scripted again, and those that need oneDNN not at
    all where it cannot run them (bf16 on a CPU without its bf16 kernels)."""
    twin = serving_backbone(backbone, precision, scripted=True)
    built = (twin.scripted.fused_gelu, twin.scripted.packed_weights)
    served = next(name for name, flags in FORWARDS.items() if flags == built)
    twins = {served: twin}
    onednn = onednn_supports(twin.encoder.embeddings.word_embeddings.weight)
    for name, (fused, packed) in FORWARDS.items():
        if name != served and (onednn or not (fused or packed)):
            rebuilt = ScriptedEncoder(twin.encoder, backbone.sites, fused, packed)
            twins[name] = twin.twin(twin.encoder, twin.precision, False, rebuilt)
    apply_mode = resolve_apply_mode(AUTO_APPLY_MODE, torch.device("cpu"))
    return twins, f"{served}-{apply_mode}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--distinct", default="1,8,32", help="distinct adapters per batch")
    parser.add_argument("--bottleneck", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--contended", action="store_true", help="a pure-Python thread runs meanwhile"
    )
    parser.add_argument(
        "--precision", default="auto", help="serving precision of the scripted forward"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    backbone = load_backbone(resolve_backbone(args.backbone), device="cpu")
    distincts = [int(x) for x in args.distinct.split(",")]
    pool = make_models(backbone, max(distincts), args.bottleneck)
    texts = sorted(test_sentences(args.rows), key=len)  # the batcher's order
    twins, served = scripted_twins(backbone, args.precision)
    modes = [m for m in MODES if not m.startswith("scripted-") or m.rpartition("-")[0] in twins]
    settings: list[tuple[int, str | None]] = [(0, None)]
    settings += [(d, mode) for d in distincts for mode in modes]
    batches = {}
    for distinct, _ in settings:
        models = [pool[i % max(distinct, 1)] for i in range(args.rows)]
        batches[distinct] = (models, encode_rows_for(models, texts))
    timings: dict[tuple[int, str | None], list[tuple[float, float]]] = {s: [] for s in settings}
    with busy_python_thread(args.contended):
        for repeat in range(args.warmup + args.repeats):
            for setting in settings:
                distinct, mode = setting
                models, encoded = batches[distinct]
                measured = time_batch(backbone, twins, models, encoded, mode)
                if repeat >= args.warmup:
                    timings[setting].append(measured)

    commit, date = git_commit(), utc_now()
    lengths = [len(row.input_ids) for row in batches[distincts[0]][1]]
    summary = {}
    for (distinct, mode), samples in timings.items():
        wall = sorted(sample[0] for sample in samples)
        cpu = statistics.median(sample[1] for sample in samples)
        record = {
            "benchmark": "adapter_apply",
            "apply_mode": mode or "none",
            "distinct_adapters": distinct,
            "rows": args.rows,
            "bottleneck": args.bottleneck,
            "mean_tokens": round(sum(lengths) / len(lengths), 1),
            "max_tokens": max(lengths),
            "repeats": len(samples),
            "wall_ms_min": round(wall[0] * 1000, 2),
            "wall_ms_p50": round(statistics.median(wall) * 1000, 2),
            "wall_ms_p90": round(wall[int(0.9 * (len(wall) - 1))] * 1000, 2),
            "cpu_ms_p50": round(cpu * 1000, 2),
            "rows_per_s": round(args.rows / wall[0], 1),
            "rows_per_cpu_s": round(args.rows / cpu, 1),
            "torch_threads": torch.get_num_threads(),
            "precision": twins[served.rpartition("-")[0]].precision,
            "contended": args.contended,
            "served": mode == served,
            "device": "cpu",
            "cpu": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
            "backbone": backbone.fingerprint,
            "commit": commit,
            "command": "python -m benchmarks.micro.adapter_apply " + " ".join(argv or sys.argv[1:]),
            "date": date,
        }
        append_record(args.out, record)
        summary[(distinct, mode)] = (record["rows_per_s"], record["rows_per_cpu_s"])
        print(json.dumps(record))
    for mode in modes:
        one, many = summary[(distincts[0], mode)], summary[(distincts[-1], mode)]
        print(
            f"{mode}: throughput with {distincts[-1]} distinct adapters / {distincts[0]}: "
            f"wall(min) {many[0] / one[0]:.3f}, cpu(p50) {many[1] / one[1]:.3f}"
        )


if __name__ == "__main__":
    main()
