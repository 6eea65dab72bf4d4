"""Cold adapter loads in one process: time per load, and RSS under LRU churn.

    python -m benchmarks.micro.cold_load --workdir /tmp/lsbench --run-id cold-1123

Reuses (or seeds) the serving sweep's store of MiniLM adapters and loads them through the
service's own `AdapterStore.load` (sha256 check, safetensors, model build). Four phases, one
record each in results/cold_load.jsonl:

- `alone`: `--loads` loads back to back; wall and thread-CPU time per load.
- `contended`: the same while one other thread runs pure Python, as the event loop and the
  model thread do in the server; the load then waits for the GIL after each torch call, up to
  the interpreter's switch interval (`--switch-interval-ms`; the service sets 1 ms, Python's
  default is 5).
- `churn`: an LRU with the serving cache's byte budget over all adapters, `--churn-loads` misses
  on one thread; how far RSS grows past the bytes the LRU holds (the allocator's share).
- `gc`: one full cyclic-GC collection of this process (backbone, torch, transformers loaded),
  then again after `gc.freeze()`, as the server does once ready. A full collection holds the GIL
  throughout, so in a server it stalls every thread.
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness.backbones import resolve_backbone
from benchmarks.harness.contention import busy_python_thread
from benchmarks.harness.records import (
    RESULTS_DIR,
    append_record,
    cpu_model,
    date_span,
    git_commit,
    utc_now,
)
from benchmarks.harness.seeding import load_or_seed

RESULTS = RESULTS_DIR / "cold_load.jsonl"
PHASES = ("alone", "contended", "churn", "gc")


def timed_loads(load: Callable[[int], object], indices: list[int]) -> dict:
    """Wall and thread-CPU milliseconds per load: p50, p99, max."""
    wall, cpu = [], []
    for index in indices:
        started, cpu_started = time.perf_counter(), time.thread_time()
        load(index)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
    return {"loads": len(indices), **percentiles("wall_ms", wall), **percentiles("cpu_ms", cpu)}


def percentiles(name: str, values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        f"{name}_p50": round(statistics.median(ordered), 2),
        f"{name}_p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        f"{name}_max": round(ordered[-1], 2),
    }


def contended(work: Callable[[], dict]) -> dict:
    """Run `work` while another thread spins in pure Python (holding the GIL between switches)."""
    with busy_python_thread():
        return work()


def churn(load: Callable[[int], object], count: int, misses: int, budget: int, seed: int) -> dict:
    """RSS growth vs bytes held by an LRU of loaded models under uniform random traffic."""
    import psutil

    from service.serving.adapter_cache import model_bytes

    process = psutil.Process()
    load(0)
    before = process.memory_info().rss
    held: OrderedDict[int, object] = OrderedDict()
    held_bytes, rng, done = 0, random.Random(seed), 0
    while done < misses:
        index = rng.randrange(count)
        if index in held:
            held.move_to_end(index)
            continue
        model = load(index)
        held[index] = model
        held_bytes += model_bytes(model)
        done += 1
        while held_bytes > budget:
            held_bytes -= model_bytes(held.popitem(last=False)[1])
    growth = process.memory_info().rss - before
    return {
        "loads": misses,
        "budget_mb": round(budget / 2**20, 1),
        "held_mb": round(held_bytes / 2**20, 1),
        "entries": len(held),
        "rss_growth_mb": round(growth / 2**20, 1),
        "over_held_mb": round((growth - held_bytes) / 2**20, 1),
    }


def full_collections() -> dict:
    """Milliseconds of one full collection before and after freezing what is alive now."""
    gc.collect()
    started = time.perf_counter()
    gc.collect()
    before = (time.perf_counter() - started) * 1000
    tracked = len(gc.get_objects())
    gc.freeze()
    started = time.perf_counter()
    gc.collect()
    after = (time.perf_counter() - started) * 1000
    return {
        "tracked_objects": tracked,
        "full_gc_ms": round(before, 1),
        "frozen_gc_ms": round(after, 1),
    }


def run(args: argparse.Namespace) -> None:
    import torch

    from list_core.backbone import load_backbone
    from service.registry.adapters import latest_adapter
    from service.registry.db import Database
    from service.store import AdapterStore

    torch.set_num_threads(1)
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    manifest = load_or_seed(args.workdir, resolve_backbone(), args.adapters)
    backbone = load_backbone(manifest["backbone_path"], "cpu")
    database = Database(f"sqlite:///{args.workdir / 'registry.db'}")
    with database.read_session() as session:
        versions = [latest_adapter(session, task) for task in manifest["tasks"][: args.adapters]]
        keys = [(version.path, version.sha256) for version in versions]
    database.dispose()
    store = AdapterStore(args.workdir / "adapters")

    def load(index: int) -> object:
        return store.load(*keys[index], backbone)

    indices = [i % len(keys) for i in range(1, args.loads + 1)]
    load(0)  # the process's first load pays one-off lazy initialisation
    context = {
        "run": args.run_id,
        "commit": git_commit(),
        "backbone": backbone.fingerprint,
        "adapter_bytes": manifest["adapter_bytes"],
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
    }
    phases = {  # in the order of PHASES
        "alone": lambda: timed_loads(load, indices),
        "contended": lambda: contended(lambda: timed_loads(load, indices)),
        "churn": lambda: churn(
            load, len(keys), args.churn_loads, int(args.cache_mb * 2**20), args.seed
        ),
        "gc": full_collections,
    }
    for phase, measure in phases.items():
        if args.phases and phase not in args.phases:
            continue
        load_average = os.getloadavg()[0]
        record = {
            "phase": phase,
            **measure(),
            "load_average_1m": round(load_average, 2),
            "date": utc_now(),
        }
        append_record(args.out, {**record, **context})
        print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="seeded store to (re)use")
    parser.add_argument("--adapters", type=int, default=1024)
    parser.add_argument("--loads", type=int, default=300, help="timed loads per phase")
    parser.add_argument("--churn-loads", type=int, default=2500)
    parser.add_argument("--cache-mb", type=float, default=256.0, help="LRU budget (churn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--switch-interval-ms", type=float, default=None, help="default: Python's own (5)"
    )
    parser.add_argument(
        "--phases", type=lambda text: text.split(","), default=None, help="default: all"
    )
    parser.add_argument("--run-id", default=time.strftime("%Y%m%dT%H%M%S"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    run(parser.parse_args(argv))


def render(records: list[dict]) -> str:
    """RESULTS.md's section: the newest record of each phase."""
    newest = {r["phase"]: r for r in records}
    shown = [newest[phase] for phase in PHASES if phase in newest]
    runs = ", ".join(f"`{run}`" for run in dict.fromkeys(r["run"] for r in shown))
    lines = [
        "## Cold adapter loads in one process (`cold_load`)",
        "",
        f"Records: `benchmarks/results/cold_load.jsonl`, the newest of each phase (runs {runs}; "
        f"{date_span(shown)}). Loads through the service's "
        "`AdapterStore.load` of the serving sweep's MiniLM adapters, one torch thread: alone, "
        "beside a busy Python thread (contended), under LRU churn at the cache's byte budget, "
        "and one full cyclic-GC collection before and after `gc.freeze()`. Command: `python -m "
        "benchmarks.micro.cold_load --workdir DIR --run-id RUN` (`--phases`, "
        "`--switch-interval-ms`).",
        "",
        "| phase | switch interval ms | wall ms p50 / p99 | CPU ms p50 / p99 | other |",
        "|---|---:|---|---|---|",
    ]
    for r in shown:
        interval = r.get("switch_interval_ms")
        wall = f"{r['wall_ms_p50']} / {r['wall_ms_p99']}" if "wall_ms_p50" in r else "–"
        cpu = f"{r['cpu_ms_p50']} / {r['cpu_ms_p99']}" if "cpu_ms_p50" in r else "–"
        if r["phase"] == "churn":
            other = (
                f"RSS {r['rss_growth_mb']:+} MB, {r['over_held_mb']:+} past the {r['held_mb']} MB "
                f"the LRU holds ({r['loads']} loads)"
            )
        elif r["phase"] == "gc":
            other = f"full GC {r['full_gc_ms']} ms, after freeze {r['frozen_gc_ms']} ms"
        else:
            other = f"{r['loads']} loads"
        lines.append(f"| {r['phase']} | {interval or 'default'} | {wall} | {cpu} | {other} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
