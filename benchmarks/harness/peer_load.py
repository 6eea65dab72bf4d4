"""The peers benchmark's load generator: one server of any peer, one point, its own process.

The serving sweep's generator (`loadgen.py`) speaks listserve's API and reads its `/info`; the
peers benchmark also drives servers that speak others' (Infinity's `/embeddings`, the SetFit
server's `/predict/{task}`). So a `Target` says where each request goes and what its body holds,
and everything else is the same for every peer: the keep-alive client (`client.Connection`),
the closed loop of `--concurrency` clients, the warm-up, the bounds in time and requests, the
texts (`workload.test_sentences`), uniform traffic over the target's tasks, and the figures.
"""

import asyncio
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.harness.client import Connection
from benchmarks.harness.loadgen import prewarm, summarise
from benchmarks.harness.server import server_cpu_seconds
from benchmarks.harness.stats import percentile_ms
from benchmarks.harness.workload import test_sentences


@dataclass(frozen=True)
class Target:
    """Where one peer's requests go: `path` with `{task}` filled by one of `tasks` (drawn
    uniformly per request), a JSON body with the texts under `texts_key` beside `extra`, and
    whether the server is listserve (then its `/info` counters join the record)."""

    url: str
    path: str
    tasks: list[str] = field(default_factory=lambda: [""])
    texts_key: str = "inputs"
    extra: dict = field(default_factory=dict)
    auth: str = ""
    listserve: bool = False

    def body(self, texts: list[str]) -> bytes:
        return json.dumps({**self.extra, self.texts_key: texts}).encode()

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> "Target":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def core_summary(
    latencies: list[float], statuses: dict[int, int], rows_ok: int, wall: float
) -> dict:
    """What the clients saw, the same fields for every peer."""
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
    }


async def drive(
    target: Target,
    concurrency: int,
    warmup: float,
    duration: float,
    max_requests: int,
    seed: int = 7,
    server_pid: int | None = None,
    prewarmed: bool = False,
) -> dict:
    """A closed loop of `concurrency` clients, one sst-2 sentence per request: `warmup`
    seconds unmeasured, then `duration` seconds measured, each phase capped at
    `max_requests`. Returns the point's figures (plus listserve's `/info` deltas)."""
    rng = random.Random(seed)
    texts = test_sentences()
    host, _, port = target.url.removeprefix("http://").partition(":")
    pool = [Connection(host, int(port), target.auth) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rows_ok = 0

    async def one(connection: Connection, measured: bool) -> None:
        nonlocal rows_ok
        path = target.path.format(task=rng.choice(target.tasks))
        started = time.perf_counter()
        status, _ = await connection.request("POST", path, target.body([rng.choice(texts)]))
        elapsed = time.perf_counter() - started
        if measured:
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(elapsed)
                rows_ok += 1

    async def closed_loop(seconds: float, measured: bool) -> None:
        deadline = time.perf_counter() + seconds
        budget = [max_requests]

        async def client_loop(connection: Connection) -> None:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                await one(connection, measured)

        await asyncio.gather(*(client_loop(connection) for connection in pool))

    async def info() -> dict:
        status, payload = await pool[0].request("GET", "/info")
        if status != 200:
            raise RuntimeError(f"/info answered {status}")
        return json.loads(payload)

    if prewarmed:
        await prewarm(pool, target.tasks, texts[0])
    await closed_loop(warmup, measured=False)
    before = await info() if target.listserve else None
    cpu_before = server_cpu_seconds(server_pid)
    started = time.perf_counter()
    await closed_loop(duration, measured=True)
    wall = time.perf_counter() - started
    cpu = server_cpu_seconds(server_pid) - cpu_before
    after = await info() if target.listserve else None
    for connection in pool:
        await connection.close()
    result = core_summary(latencies, statuses, rows_ok, wall)
    if before is not None and after is not None:
        result = {**summarise(latencies, statuses, rows_ok, wall, before, after), **result}
    if server_pid:
        result["server_cpu_s"] = round(cpu, 3)
        result["rows_per_server_cpu_s"] = round(rows_ok / cpu, 2) if cpu > 0 else None
    return result
