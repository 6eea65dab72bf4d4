"""What each tuner costs to serve: a mixed batch of 32 rows over 32 tasks of that tuner,
against the plain frozen forward of the same rows (32 head-only tasks, the `linear` tuner).

    python -m benchmarks.tuner_serving --tuners adapter,lora,prefix --repeats 20

On the service's serving twin (`serving_backbone`: the scripted forward where the tuner has
one, auto precision), in the process's one thread pool; tasks are freshly built with their
tensors moved off their zero start, so every tuner really computes. One record per tuner in
benchmarks/results/tuner_serving.jsonl (median of `repeats` timed batches after a warm-up,
the plain forward timed again beside each tuner).
"""

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.fewshot import load_task
from benchmarks.harness.records import RESULTS_DIR, append_record, cpu_model, git_commit, utc_now
from list_core.backbone import Backbone, load_backbone
from list_core.hyperparams import resolve_hyperparameters
from list_core.inference import Row, predict_mixed
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from list_core.tuners.registry import TUNERS, check_pair, tuner_config

RESULTS = RESULTS_DIR / "tuner_serving.jsonl"
PLAIN = "linear"


def tasks_of(backbone: Backbone, tuner: str, count: int, spec, method: str) -> list[TaskModel]:
    """`count` tasks of `tuner`, their tensors nudged off their (often zero) start."""
    hp = resolve_hyperparameters({"budget": "fast"}, 30, 0, backbone.device, method, tuner)
    config = tuner_config(tuner, hp, backbone)
    models = []
    for seed in range(count):
        generator = torch.Generator().manual_seed(seed)
        model = TaskModel(backbone, spec, method, config, hp.max_length, generator).eval()
        with torch.no_grad():
            for parameter in model.adapters.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
        model.adapters.finalise()
        models.append(model)
    return models


def batch_seconds(served: Backbone, rows: list[Row], repeats: int) -> float:
    predict_mixed(served, rows)  # warm-up (and TorchScript's profiling runs)
    predict_mixed(served, rows)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict_mixed(served, rows)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuner_serving")
    parser.add_argument("--tuners", default=",".join(TUNERS))
    parser.add_argument("--tasks", type=int, default=32, help="tasks (and rows) per batch")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    backbone = load_backbone(resolve_backbone(args.backbone), "cpu")
    served = serving_backbone(backbone, "auto", scripted=True)
    task = load_task("sst-2")
    texts = [example.text for example in task.test[: args.tasks]]
    plain_rows = [
        Row(model, text)
        for model, text in zip(
            tasks_of(backbone, PLAIN, args.tasks, task.spec, "prompt"), texts, strict=True
        )
    ]
    for tuner in args.tuners.split(","):
        method = "prompt"
        try:
            check_pair(tuner, method, backbone)
        except ValueError:
            method = "classic"
        models = tasks_of(backbone, tuner, args.tasks, task.spec, method)
        rows = [Row(model, text) for model, text in zip(models, texts, strict=True)]
        # Paired: the plain forward is timed next to each tuner's, so a shared CPU's load
        # drifts both alike.
        plain = batch_seconds(served, plain_rows, args.repeats)
        seconds = batch_seconds(served, rows, args.repeats)
        record = {
            "tuner": tuner,
            "method": method,
            "tasks": args.tasks,
            "batch_ms": round(seconds * 1000, 2),
            "plain_ms": round(plain * 1000, 2),
            "relative": round(seconds / plain, 3),
            "forward": "scripted" if rows[0].model.adapters.scriptable else "eager",
            "precision": served.precision,
            "backbone": args.backbone,
            "threads": args.threads,
            "cpu": cpu_model(),
            "commit": git_commit(),
            "command": "python -m benchmarks.tuner_serving " + shlex.join(argv),
            "date": utc_now(),
        }
        append_record(args.out, record)
        print(f"{tuner}: {record['batch_ms']} ms vs plain {record['plain_ms']} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
