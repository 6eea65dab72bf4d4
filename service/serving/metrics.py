"""Prometheus metrics of the serving path: the batcher, the adapter cache and what was served.

Created once per process: a Prometheus registry refuses duplicate names, and tests (and the
benchmark) create many caches and batchers. They are process totals across them, on the default
registry, so they appear on the API's /metrics page beside its HTTP metrics (service/metrics.py).
"""

import threading

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from list_core.eager_fallback import EAGER_FALLBACKS

PREDICTIONS = Counter(
    "listserve_predictions",
    "Texts classified, by the task's head kind and method",
    ["head_kind", "method"],
)
ADAPTER_LOAD_FAILURES = Counter(
    "listserve_adapter_load_failures",
    "Adapter loads refused, so never served: `integrity` (files missing or not matching their "
    "registered sha256) or `mismatch` (another backbone's adapter, or not an adapter)",
    ["reason"],
)

QUEUE_ROWS = Gauge("listserve_batcher_queue_rows", "Rows waiting for the model thread")
INCOMING_ROWS = Gauge(
    "listserve_batcher_incoming_rows", "Rows on their way to the queue: their adapter is loading"
)
REJECTED = Counter("listserve_batcher_rejected_requests", "Requests refused: queue full")
DROPPED = Counter(
    "listserve_batcher_dropped_requests", "Requests dropped before their forward: client gone"
)
FORWARD_ROWS = Histogram(
    "listserve_batcher_forward_rows",
    "Rows per backbone forward",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
FORWARD_SECONDS = Histogram(
    "listserve_batcher_forward_seconds",
    "Wall time of one backbone forward (encode excluded)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ADAPTER_SWAPS = Counter("listserve_batcher_adapter_swaps", "Adapter swaps (swap mode only)")

CACHE_HITS = Counter("listserve_adapter_cache_hits", "Adapter cache lookups served from memory")
CACHE_MISSES = Counter("listserve_adapter_cache_misses", "Adapter cache lookups that loaded")
CACHE_EVICTIONS = Counter("listserve_adapter_cache_evictions", "Adapters evicted from the cache")
CACHE_BYTES = Gauge(
    "listserve_adapter_cache_bytes",
    "Bytes charged to the cache budget: cached and leased adapters and loads in flight",
)
CACHE_ENTRIES = Gauge("listserve_adapter_cache_entries", "Adapters held in the cache")
CACHE_LOAD_SECONDS = Histogram(
    "listserve_adapter_load_seconds",
    "Time to load one cold adapter from the store (in its loader thread)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# Per-task counts with bounded cardinality: the first TASK_SERIES tasks this process serves get
# a series each, every later one counts under task="other" (a counter per task id would grow
# without bound, and a top-N chosen at scrape time would move counts between series).
TASK_SERIES = 100
OTHER_TASKS = "other"
TASK_PREDICTIONS = Counter(
    "listserve_task_predictions",
    f"Texts classified per task: the first {TASK_SERIES} tasks this process served by id, the "
    f"rest as task={OTHER_TASKS!r}",
    ["task"],
)
_task_series: set[str] = set()
_task_series_lock = threading.Lock()


def count_task_predictions(task_id: str, texts: int, limit: int = TASK_SERIES) -> None:
    with _task_series_lock:
        if task_id not in _task_series and len(_task_series) < limit:
            _task_series.add(task_id)
        label = task_id if task_id in _task_series else OTHER_TASKS
    TASK_PREDICTIONS.labels(label).inc(texts)


class _EagerFallbacks:
    """`listserve_eager_fallback_rows_total{tuner}`: rows the scripted forward could not take
    because of their tuner (list_core/eager_fallback.py counts them; docs/tuners.md)."""

    def collect(self):
        family = CounterMetricFamily(
            "listserve_eager_fallback_rows",
            "Rows served by the eager forward because the scripted one does not compute their "
            "tuner, by tuner",
            labels=["tuner"],
        )
        for tuner, rows in sorted(EAGER_FALLBACKS.snapshot().items()):
            family.add_metric([tuner], rows)
        yield family


REGISTRY.register(_EagerFallbacks())
