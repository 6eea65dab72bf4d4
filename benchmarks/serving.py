"""Serving benchmark: mixed-adapter batching against three baselines, over real HTTP.

    python -m benchmarks.serving sweep --duration 5 --warmup 2

For each batching mode (`mixed`, `unbatched`, `per_adapter`, `swap`; service/serving/baselines.py)
the real API server (`listserve serve`) runs in its own process with the offline MiniLM
backbone and `LISTSERVE_BATCH_MODE=<mode>`; a separate load-generator process
(`python -m benchmarks.serving loadgen`) drives it over loopback with a bounded request count
and time. All modes see the same registry (1,024 task adapters seeded once, with distinct random
adapter weights, on the same backbone), the same sst-2 test texts and the same traffic seeds.

Sweep: adapters 1/16/128/1024 in the traffic, uniform and Zipf(s=1.1) over them, client
concurrency 1/16/64 (closed loop). All four servers stay up and each point runs the four modes
back to back, so the load other users put on a shared machine drifts across modes alike, and
before each point every stored adapter file is read once, so the OS file cache is warm for
each mode alike (`warm_store`, in runs from `sweep-1204f` on). Where a point's adapters fit the
adapter cache, each mode's load generator first requests every one of them once (`prewarm`,
records mark `prewarmed`, in runs from `sweep-1204h` on). Each point gets a warm-up (not
measured) and a measured phase; one JSON record per point and mode is appended to
results/serving.jsonl. Then an open-loop point (Poisson arrivals at half of mixed
mode's peak rate) measures tail latency at moderate load, for every mode.
`python -m benchmarks.serving_report` turns the records into ratios and a markdown section.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.harness.arguments import add_batching_arguments, int_list, name_list
from benchmarks.harness.backbones import resolve_backbone
from benchmarks.harness.loadgen import generate
from benchmarks.harness.records import RESULTS_DIR, cpu_model, git_commit
from benchmarks.harness.seeding import load_or_seed
from benchmarks.harness.server import server
from benchmarks.harness.sweep import (
    fits_cache,
    half_load_point,
    sweep_points,
    try_measure,
    warm_store,
)

RESULTS = RESULTS_DIR / "serving.jsonl"
MODES = ("mixed", "unbatched", "per_adapter", "swap")


def run_sweep(args: argparse.Namespace) -> None:
    """The `sweep` command: seed (or reuse) the store, start one server per mode, measure every
    point mode by mode, then the half-load point."""
    backbone_path = resolve_backbone(args.backbone)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="listserve-serving-") as tmp:
        workdir = args.workdir or Path(tmp)
        manifest = load_or_seed(workdir, backbone_path, max(args.adapters))
        print(
            f"{len(manifest['tasks'])} adapters ready after {time.time() - started:.0f}s",
            flush=True,
        )
        context = {
            "backbone": manifest["backbone"],
            "commit": git_commit(),
            "run": args.run_id,
            "adapter_bytes": manifest["adapter_bytes"],
            "cache_budget_mb": args.cache_mb,
            "max_batch_rows": args.max_batch_rows,
            "max_wait_ms": args.max_wait_ms,
            "max_wait_for_loads_ms": args.max_wait_for_loads_ms,
            "rows_per_request": args.rows_per_request,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "torch_threads": args.torch_threads,
            "server_env": args.server_env,
            "command_args": " ".join(sys.argv[2:]),
        }
        peaks: dict[tuple[int, str], float] = {}
        with ExitStack() as stack:
            # Every mode's server stays up (idle ones cost no CPU) and each point runs the modes
            # back to back, so a change in the shared machine's load hits all modes alike.
            servers = {
                m: stack.enter_context(server(workdir, manifest, m, args)) for m in args.modes
            }
            for point in sweep_points(args):
                point["prewarmed"] = fits_cache(point["adapters"], manifest, args)
                warm_store(workdir)
                for mode, (url, pid) in servers.items():
                    record = try_measure(url, pid, workdir, {**point, "mode": mode}, args, context)
                    if record and mode == "mixed":
                        key = (point["adapters"], point["traffic"])
                        peaks[key] = max(peaks.get(key, 0.0), record["rows_per_s"] or 0.0)
            half = half_load_point(peaks, args)
            if half is not None:
                half["prewarmed"] = fits_cache(half["adapters"], manifest, args)
                warm_store(workdir)
                for mode, (url, pid) in servers.items():
                    try_measure(url, pid, workdir, {**half, "mode": mode}, args, context)
    print(f"sweep finished in {(time.time() - started) / 60:.1f} min", flush=True)


def run_loadgen(args: argparse.Namespace) -> None:
    """The `loadgen` command: drive one server for one point and print its result as JSON."""
    print(json.dumps(asyncio.run(generate(args))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="seed, then run every mode's server and the sweep")
    sweep.add_argument("--modes", type=name_list, default=list(MODES))
    sweep.add_argument("--adapters", type=int_list, default=[1, 16, 128, 1024])
    sweep.add_argument("--traffic", type=name_list, default=["uniform", "zipf"])
    sweep.add_argument("--concurrency", type=int_list, default=[1, 16, 64])
    sweep.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    sweep.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per point")
    sweep.add_argument("--max-requests", type=int, default=5000, help="cap per phase")
    sweep.add_argument("--rows-per-request", type=int, default=1)
    sweep.add_argument("--cache-mb", type=float, default=256.0, help="adapter cache budget")
    add_batching_arguments(sweep)
    sweep.add_argument("--torch-threads", type=int, default=None)
    sweep.add_argument(
        "--server-env", action="append", default=[], help="KEY=VALUE for the server processes"
    )
    sweep.add_argument("--half-load-adapters", type=int, default=128)
    sweep.add_argument("--half-load-traffic", default="zipf")
    sweep.add_argument(
        "--half-load-rate", type=float, default=None, help="req/s (default: half of mixed peak)"
    )
    sweep.add_argument("--backbone", default=None, help="default: the offline MiniLM")
    sweep.add_argument("--seed", type=int, default=7)
    sweep.add_argument("--run-id", default=time.strftime("%Y%m%dT%H%M%S"))
    sweep.add_argument("--out", type=Path, default=RESULTS)
    sweep.add_argument("--workdir", type=Path, default=None, help="keep/reuse the seeded store")
    sweep.set_defaults(handler=run_sweep)

    load = commands.add_parser("loadgen", help="drive one server for one point (own process)")
    load.add_argument("--url", required=True)
    load.add_argument("--manifest", required=True)
    load.add_argument("--adapters", type=int, required=True)
    load.add_argument("--traffic", choices=("uniform", "zipf"), required=True)
    load.add_argument("--concurrency", type=int, required=True)
    load.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    load.add_argument("--duration", type=float, required=True)
    load.add_argument("--warmup", type=float, default=0.0)
    load.add_argument("--max-requests", type=int, default=5000)
    load.add_argument("--rows-per-request", type=int, default=1)
    load.add_argument("--seed", type=int, default=7)
    load.add_argument("--server-pid", type=int, default=None, help="to measure its CPU time")
    load.add_argument(
        "--prewarm", action="store_true", help="request every task once before the warm-up"
    )
    load.set_defaults(handler=run_loadgen)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
