"""Accuracy benchmark: LiST against its baselines on the seven few-shot tasks.

    python -m benchmarks.accuracy --tasks sst-2,cr --methods list,prompt --seeds 1,2,3 \
        --budget fast
    python -m benchmarks.accuracy --methods prompt,classic --tuners lora,bitfit,prefix

`--tuners` trains every trained method with each tuner (list_core/tuners; default `adapter`);
a tuner/method pair that cannot work is skipped and said so. The survey's table of them is
`python -m benchmarks.tuners_table` (benchmarks/results/tuners.md).

Each finished (task, method, seed) job is appended to the results file at once; a rerun of the
same command skips the jobs already there, so a long run can be stopped and resumed freely.
Protocol and fields: benchmarks/README.md.
"""

import argparse
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from benchmarks.harness.arguments import parse_overrides
from benchmarks.harness.backbones import DEFAULT_BACKBONE, resolve_backbone
from benchmarks.harness.fewshot import (
    DATA_DIR,
    Split,
    Task,
    draw_split,
    load_task,
    task_names,
    with_text,
)
from benchmarks.harness.methods import (
    FULL_DATA,
    METHODS,
    TRAINED,
    FullDataSchedule,
    JobSpec,
    run_job,
)
from benchmarks.harness.records import (
    ACCURACY_RESULTS,
    append_record,
    engine_dirty,
    finished_keys,
    git_commit,
    load_avg,
    record_key,
    utc_now,
)
from benchmarks.harness.speedups import ALL, parse_speedups, speedups_name
from list_core.backbone import Backbone, load_backbone
from list_core.hyperparams import BUDGETS, resolve_hyperparameters
from list_core.progress import Progress
from list_core.tuners.registry import DEFAULT_TUNER, TUNERS, check_pair

DEFAULT_METHODS = ("majority", "zero-shot", "prompt", "list")


def _csv(choices: tuple[str, ...] | list[str] | None = None):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if choices is not None and item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{bad or text!r}: choose from {list(choices or [])}")
        return items

    return parse


def _seeds(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"seeds must be integers, got {text!r}") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--tasks", type=str, default=None, help="comma list (default: all)")
    parser.add_argument(
        "--methods", type=_csv(METHODS), default=list(DEFAULT_METHODS), help=f"from {METHODS}"
    )
    parser.add_argument("--seeds", type=_seeds, default=[1, 2, 3])
    parser.add_argument("--budget", choices=BUDGETS, default="fast")
    parser.add_argument("--k", type=int, default=30, help="labelled examples per task, in total")
    parser.add_argument(
        "--unlabeled-cap", type=int, default=None, help="max unlabelled texts (default: all)"
    )
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter override for every trained method (recorded, part of the job key)",
    )
    parser.add_argument(
        "--tuners", type=_csv(TUNERS), default=[DEFAULT_TUNER], help=f"from {list(TUNERS)}"
    )
    parser.add_argument("--pseudo-eval", type=int, default=256, help="pseudo-label sample size")
    parser.add_argument("--full-steps", type=int, default=FullDataSchedule.steps)
    parser.add_argument("--full-batch", type=int, default=FullDataSchedule.batch)
    parser.add_argument(
        "--speedups",
        type=parse_speedups,
        default=ALL,
        help="training speed-ups: all, none, or from bf16,teacher,fused,buckets "
        "(benchmarks/harness/speedups.py; part of the job key unless all)",
    )
    parser.add_argument("--label", default=None, help="free text recorded with each record")
    parser.add_argument("--out", type=Path, default=ACCURACY_RESULTS)
    parser.add_argument(
        "--force",
        action="store_true",
        help="run jobs even when already recorded (timing re-measurements; tables count the first)",
    )
    return parser


def job_identity(
    args: argparse.Namespace, task: Task, method: str, seed: int, tuner: str = DEFAULT_TUNER
) -> dict:
    """The fields that name a job; equal identities mean a rerun skips it. The `adapter`
    tuner's jobs carry no tuner field, and jobs with all training speed-ups no speedups
    field, so records from before either keep their keys."""
    tuned = {} if tuner == DEFAULT_TUNER else {"tuner": tuner}
    speedups = speedups_name(args.speedups)
    sped = {} if speedups == ALL else {"speedups": speedups}
    return {
        **tuned,
        **sped,
        "task": task.name,
        "method": method,
        "seed": seed,
        "k": len(with_text(task.train)) if method in FULL_DATA else args.k,
        "unlabeled_cap": args.unlabeled_cap,
        "backbone": args.backbone,
        "budget": args.budget,
        "overrides": args.overrides,
    }


def _progress_printer(label: str):
    def report(progress: Progress) -> None:
        if progress.steps and (progress.step % 50 == 0 or progress.step == progress.steps):
            losses = " ".join(f"{k}={v:.3f}" for k, v in progress.losses.items())
            print(
                f"    {label} s{progress.session} {progress.phase} "
                f"{progress.step}/{progress.steps} ({progress.fraction:.0%}) {losses}",
                flush=True,
            )

    return report


def run(args: argparse.Namespace, backbone: Backbone) -> list[dict]:
    """Run every job not yet in the results file; return the records written now.

    The file is re-read before each job, so several processes can share one results file as
    long as they are not started on the same job at the same moment.
    """
    names = args.tasks.split(",") if args.tasks else task_names(args.data_dir)
    tasks = {name: load_task(name, args.data_dir) for name in names}
    done = finished_keys(args.out)
    commit, dirty = git_commit(), engine_dirty()
    command = "python -m benchmarks.accuracy " + shlex.join(args.argv)
    written = []
    for seed in args.seeds:
        for name in names:
            task = tasks[name]
            split = draw_split(task.train, task.spec.labels, args.k, seed, args.unlabeled_cap)
            for method, tuner in _method_tuners(args, backbone):
                identity = job_identity(args, task, method, seed, tuner)
                if not args.force and record_key(identity) in done | finished_keys(args.out):
                    print(f"skip {name} {method} seed={seed} (already recorded)", flush=True)
                    continue
                record = _run_one(args, backbone, task, split, identity)
                record.update(
                    commit=commit, engine_dirty=dirty, command=command, threads=args.threads
                )
                if args.label is not None:
                    record["label"] = args.label
                append_record(args.out, record)
                done.add(record_key(identity))
                written.append(record)
                print(
                    f"done {name} {method} seed={seed}: acc={record['accuracy']:.4f} "
                    f"f1={record['macro_f1']:.4f} wall={record['wall_s']}s",
                    flush=True,
                )
    return written


def _method_tuners(args: argparse.Namespace, backbone: Backbone) -> list[tuple[str, str]]:
    """Every (method, tuner) job of a seed and task: untrained rows once, trained ones with
    each tuner that can work with them on this backbone."""
    pairs = []
    for method in args.methods:
        if method not in TRAINED:
            pairs.append((method, DEFAULT_TUNER))
            continue
        for tuner in args.tuners:
            try:
                base, defining = TRAINED[method]
                check_pair(tuner, base, backbone, defining.get("teacher", "prompt"))
            except ValueError as error:
                print(f"skip {method} {tuner}: {error}", flush=True)
                continue
            pairs.append((method, tuner))
    return pairs


def _run_one(args, backbone: Backbone, task: Task, split: Split, identity: dict) -> dict:
    method, seed = identity["method"], identity["seed"]
    print(f"run  {task.name} {method} seed={seed}", flush=True)
    load_before = load_avg()
    job = JobSpec(
        method=method,
        budget=args.budget,
        seed=seed,
        overrides=args.overrides,
        full_data=FullDataSchedule(args.full_steps, args.full_batch),
        pseudo_eval=args.pseudo_eval,
        tuner=identity.get("tuner", DEFAULT_TUNER),
        speedups=args.speedups,
    )
    outcome = run_job(backbone, task, split, job, _progress_printer(f"{task.name}/{method}"))
    if outcome["k"] != identity["k"]:
        raise RuntimeError(f"{task.name}/{method}: trained on {outcome['k']} labels, not K")
    return {
        "tuner": DEFAULT_TUNER,
        **identity,
        **outcome,
        "backbone_fingerprint": backbone.fingerprint,
        "n_test": len(task.test),
        "labeled_counts": dict(Counter(e.label for e in split.labeled)),
        "pseudo_eval_n": min(args.pseudo_eval, len(split.unlabeled)),
        "load_avg": [load_before, load_avg()],
        "date": utc_now(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        args.overrides = parse_overrides(args.overrides)
        resolve_hyperparameters({"budget": args.budget, **args.overrides}, args.k, 0)
    except (argparse.ArgumentTypeError, ValueError) as error:
        parser.error(str(error))
    known = task_names(args.data_dir)
    unknown = [t for t in (args.tasks or "").split(",") if t and t not in known]
    if unknown:
        parser.error(f"unknown tasks {unknown}; known: {known}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        backbone = load_backbone(resolve_backbone(args.backbone), args.device)
        written = run(args, backbone)
    finally:
        torch.set_num_threads(previous_threads)
    elapsed = time.perf_counter() - started
    print(f"{len(written)} jobs recorded in {args.out} ({elapsed:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
