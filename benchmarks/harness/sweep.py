"""The serving sweep's points, and measuring one point of one mode against its server.

A point is (adapters, traffic, concurrency) in a closed loop, or one open-loop point at half of
mixed mode's peak. Each is measured by a load-generator process (`benchmarks.harness.loadgen`)
while the server's RSS is sampled, and recorded at once.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.harness.records import append_record, utc_now
from benchmarks.harness.rss import RssSampler


def sweep_points(args: argparse.Namespace) -> list[dict]:
    """The closed-loop points of `--adapters` x `--traffic` x `--concurrency`."""
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


def fits_cache(adapters: int, manifest: dict, args: argparse.Namespace) -> bool:
    """Whether a point's adapters fit the servers' adapter cache (then they are prewarmed)."""
    return adapters * manifest["adapter_bytes"] <= args.cache_mb * 2**20


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


def loadgen_command(
    url: str, pid: int, workdir: Path, point: dict, args: argparse.Namespace
) -> list[str]:
    """The load-generator process that measures `point` against the server at `url`."""
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


def measure(
    url: str, pid: int, workdir: Path, point: dict, args: argparse.Namespace, context: dict
) -> dict:
    """Run the point's load generator while sampling the server's RSS; append its record
    (point, result, RSS, the sweep's `context`, date) to `--out` and return it."""
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
        "date": utc_now(),
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


def try_measure(
    url: str, pid: int, workdir: Path, point: dict, args: argparse.Namespace, context: dict
) -> dict | None:
    """One point; a failed load generator is reported and skipped, not fatal to the sweep."""
    try:
        return measure(url, pid, workdir, point, args, context)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"point {point} failed, skipped: {error}", flush=True)
        return None
