"""The serving sweep's load generator: one server, one point, its own process.

`python -m benchmarks.serving loadgen` runs `generate` against a server the sweep started:
closed loop (`--concurrency` clients back to back) or open loop (Poisson arrivals at `--rate`),
a warm-up and then a measured phase, each bounded in time and requests. What the server did
meanwhile (cache, batcher, CPU) is the difference of its `/info` and CPU time across the
measured phase.
"""

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from benchmarks.harness.arrivals import poisson_arrivals
from benchmarks.harness.client import Connection
from benchmarks.harness.server import server_cpu_seconds
from benchmarks.harness.stats import percentile_ms
from benchmarks.harness.traffic import task_chooser
from benchmarks.harness.workload import test_sentences


async def generate(args: argparse.Namespace) -> dict:
    """Closed loop (`--concurrency` clients back to back) or open loop (`--rate` Poisson)."""
    manifest = json.loads(Path(args.manifest).read_text(encoding="utf-8"))
    tasks = manifest["tasks"][: args.adapters]
    rng = random.Random(args.seed)
    choose = task_chooser(tasks, args.traffic, rng)
    texts = test_sentences()
    host, _, port = args.url.removeprefix("http://").partition(":")
    pool = [Connection(host, int(port), manifest["api_key"]) for _ in range(args.concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    skipped = [0]
    send_lag: list[float] = []
    rows_ok = 0

    async def one(connection: Connection, measured: bool) -> None:
        nonlocal rows_ok
        inputs = [rng.choice(texts) for _ in range(args.rows_per_request)]
        body = json.dumps({"inputs": inputs}).encode()
        started = time.perf_counter()
        status, _ = await connection.request("POST", f"/predict/{choose()}", body)
        elapsed = time.perf_counter() - started
        if not measured:
            return
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            latencies.append(elapsed)
            rows_ok += len(inputs)

    async def closed_loop(seconds: float, max_requests: int, measured: bool) -> None:
        deadline = time.perf_counter() + seconds
        budget = [max_requests]

        async def client_loop(connection: Connection) -> None:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                await one(connection, measured)

        await asyncio.gather(*(client_loop(connection) for connection in pool))

    async def open_loop(seconds: float, max_requests: int, measured: bool) -> None:
        idle = list(pool)
        in_flight: set[asyncio.Task] = set()
        sent = 0

        async def send(connection: Connection) -> None:
            try:
                await one(connection, measured)
            finally:
                idle.append(connection)

        deadline = time.perf_counter() + seconds
        async for late in poisson_arrivals(args.rate, deadline, rng):
            if sent >= max_requests:
                break
            if measured:
                send_lag.append(late)
            if not idle:
                skipped[0] += 1 if measured else 0  # all connections busy: not sent
                continue
            task = asyncio.ensure_future(send(idle.pop()))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        if in_flight:
            await asyncio.gather(*in_flight)

    async def info() -> dict:
        status, payload = await pool[0].request("GET", "/info")
        if status != 200:
            raise RuntimeError(f"/info answered {status}")
        return json.loads(payload)

    drive = open_loop if args.rate else closed_loop
    if args.prewarm:
        await prewarm(pool, tasks, texts[0])
    await drive(args.warmup, args.max_requests, measured=False)
    before = await info()
    cpu_before = server_cpu_seconds(args.server_pid)
    started = time.perf_counter()
    await drive(args.duration, args.max_requests, measured=True)
    wall = time.perf_counter() - started
    cpu = server_cpu_seconds(args.server_pid) - cpu_before
    after = await info()
    for connection in pool:
        await connection.close()
    result = summarise(latencies, statuses, rows_ok, wall, before, after)
    if args.rate:
        result["not_sent_all_busy"] = skipped[0]
        result["offered_rps"] = round((len(send_lag) - skipped[0]) / args.duration, 2)
        result["send_lag_p99_ms"] = percentile_ms(send_lag, 0.99)
    if args.server_pid:
        result["server_cpu_s"] = round(cpu, 3)
        result["rows_per_server_cpu_s"] = round(rows_ok / cpu, 2) if cpu > 0 else None
    return result


async def prewarm(pool: list[Connection], tasks: list[str], text: str) -> None:
    """One request for each task, spread over the connections, before a point's warm-up.

    Why: the servers stay up across points, so a point begins with whatever the earlier ones
    left in the adapter cache, and a warm-up of a few seconds of Zipf traffic does not reach
    the rare tasks: their first loads then fell into the measured phase (hit rate 0.97 at 128
    adapters in `sweep-1204g`) and into its tail latency. A working set that fits the cache is
    resident once this returns, so such a point measures steady serving; first loads are what
    the cold-load figures measure."""
    waiting = list(tasks)
    body = json.dumps({"inputs": [text]}).encode()

    async def send_all(connection: Connection) -> None:
        while waiting:
            task = waiting.pop()
            status, payload = await connection.request("POST", f"/predict/{task}", body)
            if status != 200:
                raise RuntimeError(f"prewarm: /predict/{task} answered {status}: {payload[:200]!r}")

    await asyncio.gather(*(send_all(connection) for connection in pool))


def summarise(
    latencies: list[float],
    statuses: dict[int, int],
    rows_ok: int,
    wall: float,
    before: dict,
    after: dict,
) -> dict:
    """The point's record fields: what the clients saw, and what the server's `/info` counters
    (`before` and `after` the measured phase) say it did meanwhile."""
    cache_before, cache_after = before["adapter_cache"], after["adapter_cache"]
    hits = cache_after["hits"] - cache_before["hits"]
    misses = cache_after["misses"] - cache_before["misses"]
    batcher_before, batcher_after = before["batcher"], after["batcher"]
    forwards = batcher_after["forwards"] - batcher_before["forwards"]
    rows = batcher_after["rows"] - batcher_before["rows"]
    requests = batcher_after["requests"] - batcher_before["requests"]
    trims = batcher_after.get("heap_trims", 0) - batcher_before.get("heap_trims", 0)

    def delta_ms(field: str, count: int) -> float | None:
        if field not in batcher_after or not count:
            return None
        return round((batcher_after[field] - batcher_before[field]) / count * 1000, 2)

    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rows_ok": rows_ok,
        "seconds": round(wall, 2),
        "rows_per_s": round(rows_ok / wall, 2) if wall else None,
        "p50_ms": percentile_ms(latencies, 0.50),
        "p95_ms": percentile_ms(latencies, 0.95),
        "p99_ms": percentile_ms(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "serving_precision": after["backbone"]["serving_precision"],
        "cache_loads": cache_after["loads"] - cache_before["loads"],
        "cache_entries": cache_after["entries"],
        "cache_bytes": cache_after["bytes"],
        "cold_load_p50_ms": cache_after["load_ms_p50"],
        "cold_load_p99_ms": cache_after["load_ms_p99"],
        "cold_load_cpu_p99_ms": cache_after.get("load_cpu_ms_p99"),
        "cold_load_wait_p99_ms": cache_after.get("load_wait_ms_p99"),
        "mean_forward_rows": round(rows / forwards, 2) if forwards else None,
        "adapter_swaps": batcher_after["adapter_swaps"] - batcher_before["adapter_swaps"],
        "queue_wait_ms": delta_ms("queue_wait_seconds", requests),
        "forward_ms": delta_ms("forward_seconds", forwards),
        "heap_trims": trims,
        "heap_trim_ms": delta_ms("heap_trim_seconds", trims),
        "model_busy_fraction": round(
            (batcher_after["busy_seconds"] - batcher_before["busy_seconds"]) / wall, 3
        )
        if wall
        else None,
    }
