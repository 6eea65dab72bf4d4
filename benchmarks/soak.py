"""Load soak: open-loop traffic from many tenants against the real server while jobs train.

    python -m benchmarks.soak run --duration 600 --peak-fraction 0.8 --tenants 200
    python -m benchmarks.soak report

`run` seeds `--tenants` tenants, each with its own API key and `--tasks-per-tenant` ready
adapters (`benchmarks.harness.seeding`, through the service's own code), starts `listserve serve`
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
from pathlib import Path
from typing import NoReturn

from benchmarks.harness.arguments import add_batching_arguments
from benchmarks.harness.backbones import resolve_backbone
from benchmarks.harness.records import RESULTS_DIR, append_record, git_commit, read_records
from benchmarks.harness.seeding import load_or_seed
from benchmarks.harness.server import server
from benchmarks.harness.soak_session import Soak, Tenants

RESULTS = RESULTS_DIR / "soak.jsonl"
# A short real LiST schedule, so several jobs finish within a 10-minute soak on 2 CPUs.
JOB_HYPERPARAMETERS = {
    "budget": "fast",
    "sessions": 1,
    "teacher_steps": 40,
    "unlabeled_steps": 40,
    "labeled_steps": 20,
}


def _terminate(signum: int, frame: object) -> NoReturn:
    """SIGTERM unwinds like Ctrl-C, so the server process is stopped on the way out."""
    raise KeyboardInterrupt


def run_soak(args: argparse.Namespace) -> dict:
    backbone_path = resolve_backbone(args.backbone)
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


def render(
    records: list[dict], run: str | None = None, windows: bool = True, title: str = "Load soak"
) -> str:
    """The markdown section for one run (default: the newest summary in the file), with a row
    per window unless `windows` is false."""
    summaries = [r for r in records if r.get("kind") == "summary" and run in (None, r["run"])]
    if not summaries:
        raise SystemExit(f"no soak summary{f' for run {run}' if run else ''}")
    summary = summaries[-1]
    rows = [r for r in records if r.get("kind") == "window" and r["run"] == summary["run"]]
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
        f"## {title}",
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
    ]
    if windows:
        lines += [
            "| t (s) | requests | errors | 429 | ok/s | p50 ms | p99 ms | RSS MB | cache MB "
            "| hit rate | jobs done | CPU s: server / others |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in rows:
            lines.append(
                f"| {w['t_end_s']:g} | {w['requests']} | {w['errors'] + w['job_errors']} "
                f"| {w['throttled']} | {w['ok_per_s']} | {w['p50_ms']} | {w['p99_ms']} "
                f"| {w['rss_mb']} | {w['cache_mb']} | {w['cache_hit_rate']} "
                f"| {w['jobs_completed']} "
                f"| {w.get('server_cpu_s', '-')} / {w.get('others_cpu_s', '-')} |"  # older runs: -
            )
    return "\n".join(lines) + "\n"


def section(records: list[dict]) -> str:
    """RESULTS.md's section: the newest run of each soak duration, without its windows (the
    `report` command prints them)."""
    summaries = [r for r in records if r.get("kind") == "summary"]
    newest = {r["settings"]["duration_s"]: r["run"] for r in summaries}
    return "\n".join(
        render(records, run, windows=False, title=f"Load soak, {seconds:g} s").rstrip() + "\n"
        for seconds, run in sorted(newest.items())
    )


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
