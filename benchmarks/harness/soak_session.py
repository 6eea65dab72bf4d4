"""One load soak against a running server: probes, open-loop traffic from many tenants, real
training jobs, and a record per window (`python -m benchmarks.soak run`)."""

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness.arrivals import poisson_arrivals
from benchmarks.harness.client import Connection
from benchmarks.harness.rss import RssSampler
from benchmarks.harness.server import server_cpu_seconds
from benchmarks.harness.soak_targets import summarise
from benchmarks.harness.stats import percentile_ms
from benchmarks.harness.traffic import task_chooser
from benchmarks.harness.workload import test_sentences

FIRST_MINUTE_S = 60.0
JOB_POLL_S = 1.0
LABEL_WORDS = {"negative": "terrible", "positive": "great"}
TRAIN = Path(__file__).resolve().parents[1] / "data" / "sst-2" / "train.jsonl"


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (all cores). Less the
    server's, it shows how much of a shared machine others took in a window."""
    import psutil

    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


@dataclass
class Tally:
    """What happened in one window; a request counts in the window in which it completes."""

    requests: int = 0
    errors: int = 0
    throttled: int = 0
    not_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    job_requests: int = 0
    job_errors: int = 0
    jobs_submitted: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0

    def predicted(self, status: int | None, seconds: float) -> None:
        """Latency counts successes only; a 429 is throttling, not an error."""
        self.requests += 1
        self.statuses["connection_error" if status is None else str(status)] += 1
        if ok(status):
            self.latencies.append(seconds)
        elif status == 429:
            self.throttled += 1
        else:
            self.errors += 1

    def job_call(self, status: int | None) -> None:
        self.job_requests += 1
        if not ok(status) and status != 429:
            self.job_errors += 1


class Tenants:
    """Sends each request with its task's tenant key on one of that tenant's own keep-alive
    connections (opened as needed), as separate clients would."""

    def __init__(
        self, url: str, manifest: dict, traffic: str, rng: random.Random, timeout_s: float
    ) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.keys: list[str] = manifest.get("api_keys", [manifest["api_key"]])
        tasks = manifest["tasks"]
        self.key_of = {task: self.keys[index % len(self.keys)] for index, task in enumerate(tasks)}
        self.choose = task_chooser(tasks, traffic, rng)
        self.texts = test_sentences()
        self.rng = rng
        self.timeout_s = timeout_s
        self.idle: dict[str, list[Connection]] = {}

    async def request(
        self, key: str, method: str, path: str, body: bytes = b""
    ) -> tuple[int | None, float, bytes]:
        """(status, seconds, body); status None for a connection error or a timeout."""
        pool = self.idle.setdefault(key, [])
        connection = pool.pop() if pool else Connection(self.host, self.port, key)
        started = time.perf_counter()
        try:
            status, payload = await asyncio.wait_for(
                connection.request(method, path, body), self.timeout_s
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, RuntimeError):
            await connection.close()
            return None, time.perf_counter() - started, b""
        pool.append(connection)
        return status, time.perf_counter() - started, payload

    async def predict(self, task: str | None = None) -> tuple[int | None, float]:
        task = task or self.choose()
        body = json.dumps({"inputs": [self.rng.choice(self.texts)]}).encode()
        status, seconds, _ = await self.request(self.key_of[task], "POST", f"/predict/{task}", body)
        return status, seconds

    async def close(self) -> None:
        for pool in self.idle.values():
            for connection in pool:
                await connection.close()


class Soak:
    """The probe, the open-loop traffic, the training jobs and the windows of one run."""

    def __init__(self, tenants: Tenants, args: argparse.Namespace) -> None:
        self.tenants = tenants
        self.args = args
        self.rng = random.Random(args.seed + 1)
        self.tally = Tally()
        self.start = 0.0
        self.deadline = float("inf")  # of the soak, once the probes are done
        self.window_start = 0.0
        self.first_minute: list[float] = []
        self.latencies: list[float] = []
        self.jobs_unfinished = 0
        self.previous_cache: dict | None = None
        self.cpu_marks = (0.0, 0.0)  # server, machine: CPU seconds at the window's start
        with open(TRAIN, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        self.train = {
            label: [row["text"] for row in rows if row["label"] == label] for label in LABEL_WORDS
        }

    async def probe(self, seconds: float, concurrency: int, max_requests: int) -> dict:
        """Closed loop at `concurrency`: the peak rate this server sustains here and now."""
        tally = Tally()
        deadline = time.perf_counter() + seconds
        budget = [max_requests]

        async def client() -> None:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                tally.predicted(*await self.tenants.predict())

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        ordered = sorted(tally.latencies)
        return {
            "seconds": round(wall, 2),
            "concurrency": concurrency,
            "requests": tally.requests,
            "errors": tally.errors,
            "throttled": tally.throttled,
            "peak_rps": round(len(ordered) / wall, 2),
            "p50_ms": percentile_ms(ordered, 0.50),
            "p99_ms": percentile_ms(ordered, 0.99),
        }

    def record(self, status: int | None, seconds: float) -> None:
        self.tally.predicted(status, seconds)
        if ok(status) and self.start:  # latencies are the soak's own, not the probes'
            self.latencies.append(seconds)
            if time.perf_counter() - self.start < FIRST_MINUTE_S:
                self.first_minute.append(seconds)

    async def open_loop(self, rate: float, deadline: float) -> None:
        """Poisson arrivals (`poisson_arrivals`); an arrival finding `--max-in-flight` requests
        outstanding is not sent and counted as not_sent."""
        in_flight: set[asyncio.Task] = set()

        async def one() -> None:
            self.record(*await self.tenants.predict())

        sent = 0
        async for _ in poisson_arrivals(rate, deadline, self.rng):
            if sent >= self.args.max_requests:
                break
            if len(in_flight) >= self.args.max_in_flight:
                self.tally.not_sent += 1
                continue
            task = asyncio.ensure_future(one())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        if in_flight:
            await asyncio.gather(*in_flight)

    def job_body(self, number: int) -> bytes:
        """A small labelled set (8 per label) and 32 unlabelled texts from sst-2 train."""
        rng = random.Random(number)
        examples = [
            {"text": text, "label": label}
            for label, texts in self.train.items()
            for text in rng.sample(texts, 8)
        ]
        unlabeled = rng.sample(self.train["negative"] + self.train["positive"], 32)
        return json.dumps(
            {
                "name": f"soak-job-{number}",
                "labels": list(LABEL_WORDS),
                "examples": examples,
                "unlabeled": unlabeled,
                "label_words": LABEL_WORDS,
                "method": "list",
                "hyperparameters": self.args.job_hyperparameters,
            }
        ).encode()

    async def jobs(self) -> None:
        """Submit a task every `--job-interval` s (tenants in turn, at most
        `--max-jobs-in-flight` unfinished) and poll each; a ready one must predict at once."""
        args = self.args
        pending: dict[str, str] = {}  # task id -> its tenant's key
        attempted = 0
        next_submit = time.perf_counter()
        while time.perf_counter() < self.deadline:
            due = time.perf_counter() >= next_submit and attempted < args.max_jobs
            if due and len(pending) < args.max_jobs_in_flight:
                next_submit += args.job_interval
                key = self.tenants.keys[attempted % len(self.tenants.keys)]
                body = self.job_body(attempted)
                status, _, payload = await self.tenants.request(key, "POST", "/tasks", body)
                attempted += 1
                self.tally.job_call(status)
                if status == 202:
                    pending[json.loads(payload)["id"]] = key
                    self.tally.jobs_submitted += 1
            for task_id, key in list(pending.items()):
                status, _, payload = await self.tenants.request(key, "GET", f"/tasks/{task_id}")
                self.tally.job_call(status)
                state = json.loads(payload)["status"] if status == 200 else None
                if state == "ready":
                    del pending[task_id]
                    self.tally.jobs_completed += 1
                    self.tenants.key_of[task_id] = key
                    self.record(*await self.tenants.predict(task_id))
                elif state in ("failed", "cancelled"):
                    del pending[task_id]
                    self.tally.jobs_failed += 1
            await asyncio.sleep(max(0.0, min(JOB_POLL_S, self.deadline - time.perf_counter())))
        self.jobs_unfinished = len(pending)

    @staticmethod
    def cpu_now(pid: int) -> tuple[float, float]:
        return server_cpu_seconds(pid), machine_cpu_seconds()

    async def cache_stats(self) -> dict | None:
        status, _, payload = await self.tenants.request(self.tenants.keys[0], "GET", "/info")
        return json.loads(payload)["adapter_cache"] if status == 200 else None

    async def close_window(self, index: int, rss: RssSampler) -> dict:
        """Swap in a fresh tally and describe the window that just ended."""
        tally, self.tally = self.tally, Tally()
        now = time.perf_counter()
        seconds, self.window_start = now - self.window_start, now
        rss_now = rss.process.memory_info().rss
        rss_peak, rss.peak = max(rss.peak, rss_now), 0
        (server_then, machine_then), self.cpu_marks = self.cpu_marks, self.cpu_now(rss.process.pid)
        server_cpu = self.cpu_marks[0] - server_then
        machine_cpu = self.cpu_marks[1] - machine_then
        cache, previous = await self.cache_stats(), self.previous_cache
        self.previous_cache = cache or previous
        hit_rate = None
        if cache and previous:
            hits = cache["hits"] - previous["hits"]
            lookups = hits + cache["misses"] - previous["misses"]
            hit_rate = round(hits / lookups, 4) if lookups else None
        ordered = sorted(tally.latencies)
        return {
            "kind": "window",
            "index": index,
            "t_end_s": round(now - self.start, 1),
            "seconds": round(seconds, 2),
            "requests": tally.requests,
            "errors": tally.errors,
            "throttled": tally.throttled,
            "not_sent": tally.not_sent,
            "statuses": dict(sorted(tally.statuses.items())),
            "ok_per_s": round(len(ordered) / seconds, 2) if seconds else None,
            "p50_ms": percentile_ms(ordered, 0.50),
            "p99_ms": percentile_ms(ordered, 0.99),
            "max_ms": percentile_ms(ordered, 1.0),
            "rss_mb": round(rss_now / 2**20, 1),
            "rss_peak_mb": round(rss_peak / 2**20, 1),
            "cache_mb": round(cache["bytes"] / 2**20, 1) if cache else None,
            "cache_entries": cache["entries"] if cache else None,
            "cache_hit_rate": hit_rate,
            "server_cpu_s": round(server_cpu, 1),
            "others_cpu_s": round(machine_cpu - server_cpu, 1),
            "job_requests": tally.job_requests,
            "job_errors": tally.job_errors,
            "jobs_submitted": tally.jobs_submitted,
            "jobs_completed": tally.jobs_completed,
            "jobs_failed": tally.jobs_failed,
        }

    async def run(self, pid: int, emit: Callable[[dict], dict]) -> dict:
        """Warm up; unless `--rate`, probe the peak with no training and then with a job
        training (the soak's own conditions, which its rate is a fraction of); then soak in
        windows. Returns the summary."""
        args = self.args
        seconds, clients, cap = args.probe_seconds, args.probe_concurrency, args.max_requests
        await self.probe(args.probe_warmup, clients, cap)
        probes: dict[str, dict] = {}
        if not args.rate:
            probes["idle"] = await self.probe(seconds, clients, cap)
        jobs = asyncio.ensure_future(self.jobs())
        load: asyncio.Future | None = None
        windows: list[dict] = []
        try:
            if not args.rate:
                probes["training"] = await self.probe(seconds, clients, cap)
                before, self.tally = self.tally, Tally()  # the soak counts its own jobs
                probes["training"]["jobs_completed"] = before.jobs_completed
                probes["training"]["job_errors"] = before.job_errors + before.errors
                print(f"probes: {probes}", flush=True)
            rate = args.rate or round(args.peak_fraction * probes["training"]["peak_rps"], 2)
            with RssSampler(pid) as rss:
                self.start = self.window_start = time.perf_counter()
                self.deadline = self.start + args.duration
                self.previous_cache = await self.cache_stats()
                self.cpu_marks = self.cpu_now(pid)
                load = asyncio.ensure_future(self.open_loop(rate, self.deadline))
                while True:
                    boundary = min(self.start + (len(windows) + 1) * args.window, self.deadline)
                    await asyncio.wait({load}, timeout=max(0.0, boundary - time.perf_counter()))
                    last = boundary >= self.deadline or load.done()
                    if last:
                        await asyncio.gather(load, jobs)
                    windows.append(emit(await self.close_window(len(windows), rss)))
                    if last:
                        break
        finally:
            for task in (load, jobs):
                if task is not None:
                    task.cancel()
            await self.tenants.close()
        summary = summarise(windows, probes or None, rate, self.first_minute, self.latencies, args)
        return summary | {"jobs_unfinished": self.jobs_unfinished}
