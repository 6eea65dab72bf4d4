"""The serving history behind the dashboard's Serving page: quantiles from histogram buckets,
samples as differences of running totals, and a ring that never grows past its capacity."""

import asyncio
import math

import pytest

from service.serving.history import (
    ServingHistory,
    Totals,
    bucket_quantile,
    sample_between,
)

INF = math.inf


def totals(at: float, **values) -> Totals:
    fields = {
        "requests": 0,
        "rows": 0,
        "forwards": 0,
        "forward_rows": 0,
        "queued_rows": 0,
        "cache_hits": 0,
        "cache_misses": 0,
        "cache_bytes": 0,
        "cache_entries": 0,
        "latency": ((0.01, 0.0), (0.1, 0.0), (INF, 0.0)),
        **values,
    }
    return Totals(at=at, **fields)


def test_bucket_quantile_interpolates_within_the_bucket() -> None:
    # 10 requests under 10 ms, 10 more between 10 and 100 ms.
    buckets = ((0.01, 10.0), (0.1, 20.0), (INF, 20.0))
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.01)
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.005)
    assert bucket_quantile(0.75, buckets) == pytest.approx(0.055)
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 0.98)


def test_bucket_quantile_of_nothing_is_none_and_the_open_bucket_is_its_lower_bound() -> None:
    assert bucket_quantile(0.5, ()) is None
    assert bucket_quantile(0.5, ((0.01, 0.0), (INF, 0.0))) is None
    assert bucket_quantile(0.99, ((0.01, 1.0), (INF, 10.0))) == 0.01


def test_a_sample_is_what_changed_between_two_reads() -> None:
    before = totals(
        100.0,
        requests=10,
        rows=40,
        forwards=4,
        forward_rows=40,
        cache_hits=8,
        cache_misses=2,
        latency=((0.01, 5.0), (0.1, 10.0), (INF, 10.0)),
    )
    after = totals(
        105.0,
        requests=30,
        rows=140,
        forwards=9,
        forward_rows=140,
        queued_rows=3,
        cache_hits=26,
        cache_misses=4,
        cache_bytes=4096,
        cache_entries=2,
        # the 20 new requests: 20 under 10 ms
        latency=((0.01, 25.0), (0.1, 30.0), (INF, 30.0)),
    )
    sample = sample_between(before, after)
    assert (sample.at, sample.seconds, sample.requests, sample.rows) == (105.0, 5.0, 20, 100)
    assert sample.rows_per_s == 20.0
    assert (sample.forwards, sample.mean_batch_rows) == (5, 20.0)
    assert sample.cache_hit_rate == pytest.approx(18 / 20)
    assert (sample.cache_bytes, sample.cache_entries, sample.queued_rows) == (4096, 2, 3)
    assert sample.latency_ms_p50 == pytest.approx(5.0)  # half of the 10 ms bucket
    assert sample.latency_ms_p99 == pytest.approx(9.9)


def test_an_idle_interval_has_no_rates_to_report() -> None:
    sample = sample_between(totals(0.0), totals(5.0))
    assert (sample.rows_per_s, sample.forwards) == (0.0, 0)
    assert sample.mean_batch_rows is None
    assert sample.cache_hit_rate is None
    assert sample.latency_ms_p50 is None and sample.latency_ms_p99 is None


def test_a_counter_that_went_down_counts_from_zero() -> None:
    sample = sample_between(totals(0.0, rows=500, requests=50), totals(1.0, rows=30, requests=3))
    assert (sample.rows, sample.requests) == (30, 3)


def test_the_ring_keeps_only_the_newest_samples() -> None:
    reads = iter(totals(float(t), rows=t * 10) for t in range(10))
    history = ServingHistory(lambda: next(reads), interval_seconds=1.0, capacity=3)
    assert history.tick() is None  # the first read only sets the baseline
    for _ in range(9):
        history.tick()
    samples = history.samples()
    assert [s["at"] for s in samples] == [7.0, 8.0, 9.0]
    assert all(s["rows_per_s"] == 10.0 for s in samples)
    assert [s["at"] for s in history.samples(since=7.5)] == [8.0, 9.0]


def test_nothing_is_sampled_until_there_is_something_to_read() -> None:
    ready = {"now": False, "t": 0.0}

    def read():
        ready["t"] += 1
        return totals(ready["t"]) if ready["now"] else None

    history = ServingHistory(read, interval_seconds=1.0, capacity=5)
    assert history.tick() is None and history.tick() is None
    ready["now"] = True
    history.tick()
    assert history.tick() is not None
    assert len(history.samples()) == 1


def test_the_sampler_runs_until_stopped_and_survives_a_failing_read() -> None:
    calls = {"n": 0}

    def read():
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a broken read")
        return totals(float(calls["n"]))

    async def run() -> int:
        history = ServingHistory(read, interval_seconds=0.01, capacity=100)
        history.start()
        while len(history.samples()) < 3:
            await asyncio.sleep(0.01)
        await history.stop()
        stopped_at = calls["n"]
        await asyncio.sleep(0.05)
        assert calls["n"] == stopped_at
        return len(history.samples())

    assert asyncio.run(run()) >= 3


@pytest.mark.parametrize(("interval", "capacity"), [(0, 10), (-1, 10), (1, 0)])
def test_a_history_needs_a_positive_interval_and_room(interval: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        ServingHistory(lambda: None, interval, capacity)
