"""Micro-benchmark: a batch's MLM prompt heads scored one by one or in one scripted call.

    python -m benchmarks.mlm_heads --repeats 30

After the backbone's forward, each task's MLM prompt head scores its rows at the mask token:
a dense layer, GELU, LayerNorm and the label words' decoder rows, with the task's own
weights. One head at a time (`MlmPromptHead.forward`, then a softmax) is about ten torch
calls per task, and each releases the GIL; the service scores all of a batch's heads in one
TorchScript call (`list_core.heads.mlm_probabilities`). This times both on the same
[rows, tokens, hidden] states for a batch of `--rows` rows spread round-robin over 1, 8 and 32
tasks (two labels each; random head weights of RoBERTa-base's width by default: the cost
depends on shapes only), alone and with a pure-Python thread running, as a server's event
loop does, at the service's GIL switch interval (`--switch-interval-ms`, the
`LISTSERVE_GIL_SWITCH_INTERVAL_MS` default). One torch thread; wall time, median of
`--repeats`. One record per setting to results/mlm_heads.jsonl.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.adapter_apply import busy_python_thread
from benchmarks.records import RESULTS_DIR, append_record, cpu_model, git_commit
from list_core.backbone import MlmHeadWeights
from list_core.heads import MlmPromptHead, mlm_probabilities

RESULTS = RESULTS_DIR / "mlm_heads.jsonl"
WAYS = ("one-by-one", "one-call")


def make_heads(count: int, hidden: int, vocab: int, seed: int) -> list[MlmPromptHead]:
    """`count` two-label heads, each with its own random weights (as after training)."""
    generator = torch.Generator().manual_seed(seed)
    pretrained = MlmHeadWeights(
        dense=nn.Linear(hidden, hidden),
        layer_norm=nn.LayerNorm(hidden),
        activation=nn.GELU(),
        decoder_weight=torch.randn(vocab, hidden, generator=generator),
        decoder_bias=torch.zeros(vocab),
    )
    heads = []
    for number in range(count):
        head = MlmPromptHead(pretrained, [2 * number, 2 * number + 1]).eval()
        with torch.no_grad():
            for tensor in head.parameters():
                tensor.add_(0.02 * torch.randn(tensor.shape, generator=generator))
        heads.append(head.requires_grad_(False))
    return heads


def score_one_by_one(heads, groups, hidden, mask_index) -> list[list[float]]:
    """What the service did before: each head's forward, a softmax, a list, per task."""
    out = []
    mask = torch.ones(hidden.shape[:2], dtype=torch.long)
    for head, indices in zip(heads, groups, strict=True):
        picks = torch.tensor(indices)
        logits = head(hidden.index_select(0, picks), mask, mask_index.index_select(0, picks))
        out += F.softmax(logits.float(), dim=-1).tolist()
    return out


def score_in_one_call(heads, groups, hidden, mask_index) -> list[list[float]]:
    positions = mask_index.tolist()
    probabilities = mlm_probabilities(heads, groups, hidden, positions)
    return [row for task in probabilities for row in task.tolist()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--distinct", default="1,8,32", help="tasks per batch")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--switch-interval-ms", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    try:
        run(args)
    finally:
        sys.setswitchinterval(interval)


def run(args: argparse.Namespace) -> None:
    """Check that both ways agree, then time them; one record per setting."""

    distincts = [int(count) for count in args.distinct.split(",")]
    heads = make_heads(max(distincts), args.hidden, args.vocab, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    hidden = torch.randn(args.rows, args.tokens, args.hidden, generator=generator)
    mask_index = torch.randint(0, args.tokens, (args.rows,), generator=generator)
    scorers = {"one-by-one": score_one_by_one, "one-call": score_in_one_call}
    batches = {}
    for distinct in distincts:
        groups = [list(range(task, args.rows, distinct)) for task in range(distinct)]
        batches[distinct] = (heads[:distinct], groups)
        reference = score_one_by_one(*batches[distinct], hidden, mask_index)
        together = score_in_one_call(*batches[distinct], hidden, mask_index)
        gap = max(
            abs(a - b)
            for x, y in zip(reference, together, strict=True)
            for a, b in zip(x, y, strict=True)
        )
        if gap > 1e-5:
            raise SystemExit(f"the two ways disagree by {gap} over {distinct} tasks")

    commit = git_commit()
    for contended in (False, True):
        timings: dict[tuple[int, str], list[float]] = {}
        with torch.no_grad(), busy_python_thread(contended):
            for repeat in range(args.warmup + args.repeats):
                for distinct, (task_heads, groups) in batches.items():
                    for way in WAYS:
                        started = time.perf_counter()
                        scorers[way](task_heads, groups, hidden, mask_index)
                        if repeat >= args.warmup:
                            timings.setdefault((distinct, way), []).append(
                                time.perf_counter() - started
                            )
        for (distinct, way), samples in timings.items():
            record = {
                "benchmark": "mlm_heads",
                "way": way,
                "tasks": distinct,
                "rows": args.rows,
                "hidden": args.hidden,
                "contended": contended,
                "switch_interval_ms": args.switch_interval_ms,
                "wall_ms_p50": round(statistics.median(samples) * 1000, 3),
                "repeats": len(samples),
                "cpu_model": cpu_model(),
                "commit": commit,
                "command": "python -m benchmarks.mlm_heads " + " ".join(args.argv),
            }
            append_record(args.out, record)
            print(json.dumps(record))


if __name__ == "__main__":
    main()
