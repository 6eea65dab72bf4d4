"""A short, bounded history of serving health, for `GET /admin/serving/history` (the
dashboard's Serving page).

Every `interval_seconds` the sampler reads the running totals the process already keeps (the
batcher's `stats()`, the adapter cache's `stats()`, the predict routes' latency histogram) and
stores what changed since the last read as one `Sample`: rows/s, requests, forwards and rows per
forward, p50/p99 predict latency, cache bytes, entries and hit rate. Samples live in a ring of
`capacity` entries (a `deque` with `maxlen`), so memory is bounded whatever the uptime:
~200 bytes a sample, 720 samples (an hour at 5 s) under 150 KiB. Nothing is sampled before the
backbone is loaded, and the history starts again with the process.

Latency percentiles are estimated from the `listserve_http_request_seconds` histogram's
buckets (linear within a bucket, as Prometheus' `histogram_quantile`), so they are as coarse as
its buckets: no per-request list is kept on the hot path.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from service.metrics import HTTP_LATENCY
from service.serving.adapter_cache import AdapterCache
from service.serving.batcher import DynamicBatcher
from service.serving.metrics import TASK_PREDICTIONS

log = logging.getLogger(__name__)
PREDICT_ROUTES = frozenset({"/predict/{task_id}", "/predict"})
# (upper bound in seconds, cumulative count) of one histogram, smallest bound first.
Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Totals:
    """The running totals at one instant (`at`: Unix seconds)."""

    at: float
    requests: int
    rows: int
    forwards: int
    forward_rows: int
    queued_rows: int
    cache_hits: int
    cache_misses: int
    cache_bytes: int
    cache_entries: int
    latency: Buckets


@dataclass(frozen=True, slots=True)
class Sample:
    """What happened in the `seconds` before `at`; the cache's size is its size at `at`."""

    at: float
    seconds: float
    requests: int
    rows: int
    rows_per_s: float
    forwards: int
    mean_batch_rows: float | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    queued_rows: int
    cache_bytes: int
    cache_entries: int
    cache_hit_rate: float | None


def read_totals(batcher: DynamicBatcher, cache: AdapterCache, now: float | None = None) -> Totals:
    batch, cached = batcher.stats(), cache.stats()
    return Totals(
        at=time.time() if now is None else now,
        requests=batch["requests"],
        rows=batch["rows"],
        forwards=batch["forwards"],
        forward_rows=round((batch["mean_forward_rows"] or 0) * batch["forwards"]),
        queued_rows=batch["queued_rows"],
        cache_hits=cached["hits"],
        cache_misses=cached["misses"],
        cache_bytes=cached["bytes"],
        cache_entries=cached["entries"],
        latency=predict_latency_buckets(),
    )


def predict_latency_buckets() -> Buckets:
    """The predict routes' cumulative latency histogram, summed over both routes."""
    counts: dict[float, float] = {}
    for family in HTTP_LATENCY.collect():
        for metric in family.samples:
            labels = metric.labels
            if not metric.name.endswith("_bucket") or labels.get("route") not in PREDICT_ROUTES:
                continue
            bound = float(labels["le"])
            counts[bound] = counts.get(bound, 0.0) + metric.value
    return tuple(sorted(counts.items()))


def bucket_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of a cumulative histogram, linear within its bucket (None when empty).
    A quantile in the open-ended top bucket is reported as the highest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def _latency_delta(before: Buckets, after: Buckets) -> Buckets:
    previous = dict(before)
    return tuple((bound, max(count - previous.get(bound, 0.0), 0.0)) for bound, count in after)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def sample_between(before: Totals, after: Totals) -> Sample:
    """One sample from two reads. A counter that went down (a new batcher or cache) counts
    from zero."""

    def grown(field: str) -> int:
        now, then = getattr(after, field), getattr(before, field)
        return now - then if now >= then else now

    seconds = max(after.at - before.at, 1e-9)
    forwards, hits, misses = grown("forwards"), grown("cache_hits"), grown("cache_misses")
    latency = _latency_delta(before.latency, after.latency)
    return Sample(
        at=round(after.at, 3),
        seconds=round(seconds, 3),
        requests=grown("requests"),
        rows=grown("rows"),
        rows_per_s=round(grown("rows") / seconds, 3),
        forwards=forwards,
        mean_batch_rows=round(grown("forward_rows") / forwards, 2) if forwards else None,
        latency_ms_p50=_ms(bucket_quantile(0.50, latency)),
        latency_ms_p99=_ms(bucket_quantile(0.99, latency)),
        queued_rows=after.queued_rows,
        cache_bytes=after.cache_bytes,
        cache_entries=after.cache_entries,
        cache_hit_rate=round(hits / (hits + misses), 4) if hits + misses else None,
    )


class ServingHistory:
    """The ring of samples and the loop that fills it. `read` returns None while there is
    nothing to read (the backbone is still loading)."""

    def __init__(
        self, read: Callable[[], Totals | None], interval_seconds: float, capacity: int
    ) -> None:
        if interval_seconds <= 0 or capacity < 1:
            raise ValueError("interval_seconds must be > 0 and capacity >= 1")
        self.read = read
        self.interval_seconds = interval_seconds
        self.capacity = capacity
        self._samples: deque[Sample] = deque(maxlen=capacity)
        self._last: Totals | None = None
        self._task: asyncio.Task | None = None

    def tick(self) -> Sample | None:
        """Read the totals once; store (and return) the sample since the previous read."""
        current = self.read()
        if current is None:
            return None
        previous, self._last = self._last, current
        if previous is None:
            return None
        sample = sample_between(previous, current)
        self._samples.append(sample)
        return sample

    def samples(self, since: float | None = None) -> list[dict]:
        """The stored samples, oldest first; with `since`, only those taken after it."""
        return [asdict(s) for s in list(self._samples) if since is None or s.at > since]

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a broken read must not end the history for good
                log.exception("serving history sample failed")
            await asyncio.sleep(self.interval_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def task_prediction_counts() -> dict[str, float]:
    """Texts classified per task by this process (`listserve_task_predictions`: the first
    tasks served by id, the rest under "other")."""
    counts: dict[str, float] = {}
    for family in TASK_PREDICTIONS.collect():
        for metric in family.samples:
            if metric.name.endswith("_total"):
                counts[metric.labels["task"]] = metric.value
    return counts
