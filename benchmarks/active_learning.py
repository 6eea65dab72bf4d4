"""Does labelling what the model suggests pay? Suggested against random texts, on the seven
few-shot tasks.

    python -m benchmarks.active_learning --threads 1          # all tasks, seeds 1,2,3
    python -m benchmarks.active_learning --tasks sst-2 --seeds 1 --threads 1

For each (task, seed): train on the K = 30 labels of the accuracy benchmark's split (`base`),
score the unlabelled pool with that model, then label 30 more texts with their gold labels and
train again from scratch on the 60, twice: once with the 30 texts `GET /tasks/{id}/suggestions`
would return (list_core/suggestions.py, the same function), once with 30 drawn at random from
the same pool. Each is scored on the whole test set; the table reports each one's gain over
`base`. Every arm is one record, appended as soon as it is measured, and a rerun skips the
recorded ones (the base record keeps the picks, so the other arms resume without it).

Trainings use the `prompt` method by default: `list` costs ~600 s a job against ~100 s on the
shared 2-core CPU, and this benchmark trains three models per (task, seed). The pool is cut
to 2,000 texts (`--pool-cap`), as the service scores at most `LISTSERVE_SUGGESTION_POOL`.
"""

import argparse
import json
import random
import shlex
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.harness.arguments import int_list, name_list, parse_overrides
from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.fewshot import DATA_DIR, Split, Task, draw_split, load_task, task_names
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    date_span,
    display_path,
    engine_dirty,
    git_commit,
    read_records,
    utc_now,
)
from benchmarks.harness.scoring import predict_labels, score
from list_core.backbone import Backbone, load_backbone
from list_core.data import Example
from list_core.hyperparams import BUDGETS
from list_core.suggestions import suggest
from list_core.task_model import TaskModel
from list_core.training import train_task

RESULTS = RESULTS_DIR / "active_learning.jsonl"
ARMS = ("base", "suggested", "random")
KEY_FIELDS = (
    "task",
    "seed",
    "arm",
    "k",
    "added",
    "pool_cap",
    "method",
    "budget",
    "backbone",
    "overrides",
)
TASK_ORDER = ("sst-2", "sst-5", "mr", "cr", "mpqa", "subj", "trec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.active_learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--tasks", type=name_list, default=None, help="comma list (default: all)")
    parser.add_argument("--seeds", type=int_list, default=[1, 2, 3])
    parser.add_argument("--k", type=int, default=30, help="labels to start from")
    parser.add_argument("--add", type=int, default=30, help="texts labelled in each arm")
    parser.add_argument("--pool-cap", type=int, default=2000, help="unlabelled texts scored")
    parser.add_argument("--method", choices=("prompt", "list", "classic"), default="prompt")
    parser.add_argument("--budget", choices=BUDGETS, default="fast")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter override for every training (recorded, part of the record key)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def record_key(record: dict) -> str:
    """What names an arm's measurement; records from before `--set` existed have none."""
    return json.dumps(
        [record.get(name, {} if name == "overrides" else None) for name in KEY_FIELDS],
        sort_keys=True,
    )


def identity(args: argparse.Namespace, task: str, seed: int, arm: str) -> dict:
    return {
        "task": task,
        "seed": seed,
        "arm": arm,
        "k": args.k,
        "added": args.add,
        "pool_cap": args.pool_cap,
        "method": args.method,
        "budget": args.budget,
        "backbone": args.backbone,
        "overrides": args.overrides,
    }


@torch.inference_mode()
def pool_probabilities(
    backbone: Backbone, model: TaskModel, examples: Sequence[Example], batch_size: int = 64
) -> list[list[float]]:
    """Label probabilities for every example, batched in order of length (little padding)."""
    model.eval()
    rows = model.encode([e.text for e in examples], [e.text_b for e in examples])
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    probabilities: list[list[float]] = [[] for _ in rows]
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        logits = model.logits_for_rows(backbone, [rows[i] for i in indices])
        for index, row in zip(indices, logits.softmax(-1).tolist(), strict=True):
            probabilities[index] = row
    return probabilities


def _train(args, backbone: Backbone, task: Task, examples: list[Example], split: Split, seed):
    unlabeled = split.unlabeled_texts() if args.method == "list" else []
    started = time.perf_counter()
    result = train_task(
        backbone,
        task.spec,
        examples,
        unlabeled,
        method=args.method,
        hyperparameters={"budget": args.budget, "seed": seed, **args.overrides},
    )
    return result.model, round(time.perf_counter() - started, 2)


def _measured(task: Task, backbone: Backbone, model: TaskModel, examples, train_s) -> dict:
    predicted = predict_labels(backbone, model, task.test)
    return {
        **score(task.test, predicted, task.spec.labels),
        "n_train": len(examples),
        "train_s": train_s,
        "labeled_counts": dict(Counter(e.label for e in examples)),
        "n_test": len(task.test),
    }


def _base(args, backbone, task: Task, split: Split, seed: int) -> dict:
    """The model on K labels, and the picks of both arms from its pool scores."""
    model, train_s = _train(args, backbone, task, list(split.labeled), split, seed)
    pool = list(split.unlabeled)
    started = time.perf_counter()
    probabilities = pool_probabilities(backbone, model, pool)
    picks = suggest([e.text for e in pool], probabilities, task.spec.labels, args.add)
    score_s = round(time.perf_counter() - started, 2)
    drawn = random.Random(f"active-learning-{seed}").sample(range(len(pool)), args.add)
    return {
        **_measured(task, backbone, model, list(split.labeled), train_s),
        "pool": len(pool),
        "suggest_s": score_s,
        "suggested_indices": [pick.index for pick in picks],
        "random_indices": drawn,
        "suggested_uncertainty_mean": statistics.fmean(p.uncertainty for p in picks),
        "suggested_gold_counts": dict(Counter(pool[p.index].label for p in picks)),
        "random_gold_counts": dict(Counter(pool[i].label for i in drawn)),
    }


def run(args: argparse.Namespace, backbone: Backbone) -> int:
    names = args.tasks or task_names(args.data_dir)
    command = "python -m benchmarks.active_learning " + shlex.join(args.argv)
    stamp = {"commit": git_commit(), "engine_dirty": engine_dirty(), "command": command}
    written = 0
    for seed in args.seeds:
        for name in names:
            task = load_task(name, args.data_dir)
            split = draw_split(task.train, task.spec.labels, args.k, seed, args.pool_cap)
            done = {record_key(r): r for r in read_records(args.out)}
            base = done.get(record_key(identity(args, name, seed, "base")))
            if base is None:
                print(f"run  {name} seed={seed} base", flush=True)
                base = {**identity(args, name, seed, "base")}
                base.update(_base(args, backbone, task, split, seed))
                _write(args, base, stamp)
                written += 1
            for arm in ("suggested", "random"):
                if record_key(identity(args, name, seed, arm)) in done:
                    print(f"skip {name} seed={seed} {arm} (already recorded)", flush=True)
                    continue
                print(f"run  {name} seed={seed} {arm}", flush=True)
                added = [split.unlabeled[i] for i in base[f"{arm}_indices"]]
                examples = [*split.labeled, *added]
                model, train_s = _train(args, backbone, task, examples, split, seed)
                record = {**identity(args, name, seed, arm)}
                record.update(_measured(task, backbone, model, examples, train_s))
                record["gain"] = record["accuracy"] - base["accuracy"]
                _write(args, record, stamp)
                written += 1
    return written


def _write(args, record: dict, stamp: dict) -> None:
    record.update(stamp, threads=args.threads, date=utc_now())
    append_record(args.out, record)
    print(
        f"done {record['task']} seed={record['seed']} {record['arm']}: "
        f"acc={record['accuracy']:.4f} train={record['train_s']}s",
        flush=True,
    )


def render(records: list[dict]) -> str:
    """RESULTS.md's section: gains over `base` per task, mean over the seeds with all 3 arms."""
    arms: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for record in records:
        arms[(record["task"], record["seed"])].setdefault(record["arm"], record)
    complete = {key: found for key, found in arms.items() if set(found) == set(ARMS)}
    first = records[0]
    lines = [
        "## Active learning: 30 suggested vs 30 random texts added to the 30 labels",
        "",
        f"Command: `{first['command']}`, {date_span(records)}; records: "
        f"`{display_path(RESULTS)}`. Method `{first['method']}`, budget `{first['budget']}`, "
        f"{first['backbone']}, pool of {first['pool_cap']:,} unlabelled texts. Each arm trains "
        f"from scratch on the {first['k']} labels plus {first['added']} texts with their gold "
        "labels: the `suggested` ones (`list_core/suggestions.py`, as `GET "
        "/tasks/{id}/suggestions` picks them) or `random` ones from the same pool. Test "
        "accuracy in %; gains in points over `base`, mean over the seeds that have all three "
        "arms.",
        "",
        "| task | seeds | base | random | suggested | random gain | suggested gain "
        "| suggested - random | suggested wins |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_task: dict[str, list[dict[str, dict]]] = defaultdict(list)
    for (task, _), found in sorted(complete.items()):
        by_task[task].append(found)
    all_differences = []
    for task in sorted(by_task, key=lambda t: (*TASK_ORDER, t).index(t)):
        runs = by_task[task]
        mean = {arm: 100 * statistics.fmean(r[arm]["accuracy"] for r in runs) for arm in ARMS}
        differences = [100 * (r["suggested"]["accuracy"] - r["random"]["accuracy"]) for r in runs]
        all_differences += differences
        seeds = ",".join(str(r["base"]["seed"]) for r in runs)
        wins = sum(d > 0 for d in differences)
        lines.append(
            f"| {task} | {seeds} | {mean['base']:.1f} | {mean['random']:.1f} "
            f"| {mean['suggested']:.1f} | {mean['random'] - mean['base']:+.1f} "
            f"| {mean['suggested'] - mean['base']:+.1f} "
            f"| {statistics.fmean(differences):+.1f} | {wins}/{len(runs)} |"
        )
    if all_differences:
        wins = sum(d > 0 for d in all_differences)
        lines += [
            "",
            f"Over all {len(all_differences)} (task, seed) pairs: suggested - random "
            f"{statistics.fmean(all_differences):+.1f} points on average, suggested ahead in "
            f"{wins}.",
        ]
    planned = len(TASK_ORDER) * 3
    if len(complete) < planned:
        lines += ["", f"Measured so far: {len(complete)} of the {planned} (task, seed) pairs."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        args.overrides = parse_overrides(args.overrides)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    known = task_names(args.data_dir)
    unknown = [name for name in args.tasks or [] if name not in known]
    if unknown:
        parser.error(f"unknown tasks {unknown}; known: {known}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    backbone = load_backbone(resolve_backbone(args.backbone), args.device)
    written = run(args, backbone)
    print(f"{written} records in {args.out} ({time.perf_counter() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
