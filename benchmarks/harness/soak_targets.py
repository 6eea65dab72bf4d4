"""The load soak's targets, judged from its window records, and the run's summary record."""

import argparse

from benchmarks.harness.stats import percentile_ms

MAX_ERROR_RATE = 0.001
P99_FACTOR = 2.0


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
