"""The load soak end to end on a tiny backbone for a few seconds, and its target checks."""

import json

import psutil
import pytest

from benchmarks.harness.records import read_records
from benchmarks.harness.soak_session import Tally
from benchmarks.harness.soak_targets import check_targets
from benchmarks.soak import main, render, section

WINDOW_FIELDS = {
    "run",
    "commit",
    "kind",
    "index",
    "t_end_s",
    "requests",
    "errors",
    "throttled",
    "not_sent",
    "statuses",
    "p50_ms",
    "p99_ms",
    "rss_mb",
    "rss_peak_mb",
    "cache_mb",
    "server_cpu_s",
    "others_cpu_s",
    "job_requests",
    "job_errors",
    "jobs_submitted",
    "jobs_completed",
    "jobs_failed",
}
SUMMARY_FIELDS = {
    "run",
    "commit",
    "date",
    "command",
    "backbone",
    "settings",
    "probes",
    "rate_rps",
    "requests",
    "errors",
    "throttled",
    "error_rate",
    "first_minute_p99_ms",
    "worst_window_p99_ms",
    "rss_start_mb",
    "rss_end_mb",
    "jobs_completed",
    "error_rate_ok",
    "p99_ok",
    "rss_flat_ok",
    "targets_met",
}
TINY_JOB = {
    "budget": "fast",
    "sessions": 1,
    "teacher_steps": 2,
    "unlabeled_steps": 2,
    "labeled_steps": 2,
}


@pytest.fixture(scope="module")
def soak_records(tiny_roberta_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("soak")
    out = folder / "soak.jsonl"
    summary = main(
        [
            "run",
            "--backbone", str(tiny_roberta_path),
            "--tenants", "3",
            "--tasks-per-tenant", "2",
            "--duration", "4",
            "--window", "1.5",
            "--probe-warmup", "0.5",
            "--probe-seconds", "1",
            "--peak-fraction", "0.5",
            "--job-interval", "1",
            "--max-jobs", "6",
            "--job-hyperparameters", json.dumps(TINY_JOB),
            "--run-id", "test-soak",
            "--out", str(out),
            "--workdir", str(folder / "work"),
        ]
    )  # fmt: skip
    return summary, read_records(out)


def test_a_short_soak_records_windows_and_a_summary(soak_records):
    summary, records = soak_records
    *windows, last = records
    assert last == summary and last["kind"] == "summary"
    assert [w["kind"] for w in windows] == ["window"] * 3  # 1.5 + 1.5 + the last 1 s
    for window in windows:
        assert set(window) >= WINDOW_FIELDS, WINDOW_FIELDS - set(window)
        assert window["run"] == "test-soak" and window["rss_mb"] > 0
        assert window["server_cpu_s"] > 0 and window["others_cpu_s"] >= 0
        assert sum(window["statuses"].values()) == window["requests"]
    assert set(summary) >= SUMMARY_FIELDS, SUMMARY_FIELDS - set(summary)
    assert summary["requests"] == sum(w["requests"] + w["job_requests"] for w in windows)
    assert summary["probes"]["idle"]["peak_rps"] > 0
    assert summary["rate_rps"] == pytest.approx(
        0.5 * summary["probes"]["training"]["peak_rps"], abs=0.01
    )
    assert summary["settings"]["tenants"] == 3 and summary["settings"]["tasks"] == 6
    assert summary["command"].startswith("python -m benchmarks.soak run --backbone")
    # Real training jobs ran through POST /tasks and their new adapters answered.
    assert summary["jobs_submitted"] >= 1 and summary["jobs_failed"] == 0
    assert summary["jobs_completed"] >= 1
    assert summary["errors"] == 0


def test_the_server_process_is_gone_after_the_run(soak_records):
    assert psutil.Process().children(recursive=True) == []


def test_the_report_renders_the_run(soak_records):
    _, records = soak_records
    text = render(records)
    assert text.startswith("## Load soak\n")
    assert "Run `test-soak`" in text and "--run test-soak" in text
    assert text.count("\n| 1.5 |") == 1 and "\n| 4 |" in text
    with pytest.raises(SystemExit):
        render(records, run="another")


def test_the_results_section_shows_the_run_without_its_windows(soak_records):
    _, records = soak_records
    text = section(records)
    assert text.startswith("## Load soak, 4 s\n")
    assert "Run `test-soak`" in text and "| error rate < 0.1% |" in text
    assert "\n| 1.5 |" not in text and "| t (s) |" not in text


def _window(p99: float, rss: float, cache: float = 100.0, **counts) -> dict:
    return {
        "requests": 1000,
        "errors": 0,
        "throttled": 0,
        "not_sent": 0,
        "job_requests": 0,
        "job_errors": 0,
        "p99_ms": p99,
        "rss_mb": rss,
        "rss_peak_mb": rss + 10,
        "cache_mb": cache,
        **counts,
    }


def test_targets_count_errors_but_not_429s():
    steady = [_window(100, 800), _window(100, 800)]
    throttled = check_targets([*steady, _window(100, 800, throttled=500)], 100, 256, 64)
    assert throttled["error_rate"] == 0 and throttled["throttled"] == 500
    assert throttled["targets_met"]
    at_limit = check_targets([*steady, _window(100, 800, errors=2, job_errors=1)], 100, 256, 64)
    assert at_limit["error_rate"] == pytest.approx(0.001)  # 3 of 3000: not below 0.1%
    assert not at_limit["error_rate_ok"] and not at_limit["targets_met"]


def test_targets_compare_every_window_p99_with_the_first_minute():
    windows = [_window(90, 800), _window(110, 800), _window(200, 800)]
    assert check_targets(windows, 100, 256, 64)["p99_ok"]
    slow = check_targets([*windows, _window(201, 800)], 100, 256, 64)
    assert slow["p99_ratio"] == 2.01 and not slow["p99_ok"]
    assert not check_targets([_window(None, 800)], None, 256, 64)["p99_ok"]


def test_rss_growth_is_judged_net_of_the_adapter_cache():
    start = [_window(100, 800, cache=50), _window(100, 820, cache=60)]
    cache_filled = check_targets([*start, _window(100, 1000, cache=230)], 100, 256, 64)
    assert cache_filled["rss_growth_mb"] == 180 and cache_filled["cache_growth_mb"] == 170
    assert cache_filled["rss_flat_ok"]
    leak = check_targets([*start, _window(100, 900, cache=60)], 100, 256, 64)
    assert leak["rss_start_mb"] == 820 and leak["rss_end_mb"] == 900
    assert not leak["rss_flat_ok"]
    beyond_budget = check_targets([*start, _window(100, 1100, cache=330)], 100, 256, 64)
    assert beyond_budget["rss_peak_growth_mb"] == 300 and not beyond_budget["rss_flat_ok"]


def test_a_tally_sorts_answers_into_latencies_throttling_and_errors():
    tally = Tally()
    for status in (200, 429, 503, None):
        tally.predicted(status, 0.01)
    tally.job_call(202)
    tally.job_call(429)
    tally.job_call(500)
    assert tally.latencies == [0.01] and tally.throttled == 1 and tally.errors == 2
    assert tally.statuses == {"200": 1, "429": 1, "503": 1, "connection_error": 1}
    assert tally.job_requests == 3 and tally.job_errors == 1
