"""The batcher's running totals, for /info and the serving benchmark, and the served-rows rate
its `Retry-After` is computed from. Model threads update them side by side, under one lock."""

import threading
from dataclasses import dataclass

from service.serving.metrics import DROPPED, FORWARD_ROWS, FORWARD_SECONDS, REJECTED


@dataclass
class _Totals:
    requests: int = 0
    rows: int = 0
    forwards: int = 0
    forward_rows: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    rejected: int = 0
    dropped: int = 0
    busy_seconds: float = 0.0
    forward_seconds: float = 0.0
    queue_wait_seconds: float = 0.0
    rows_per_s_ema: float | None = None


class BatcherStats:
    def __init__(self) -> None:
        self._totals = _Totals()
        self._lock = threading.Lock()

    @property
    def rows_per_s(self) -> float | None:
        """Rows served per second, smoothed over the recent flushes (None before the first)."""
        return self._totals.rows_per_s_ema

    def rejected(self) -> None:
        """One request refused because the queue was full (counted under the queue's lock)."""
        self._totals.rejected += 1
        REJECTED.inc()

    def dropped(self, requests: int) -> None:
        with self._lock:
            self._totals.dropped += requests
        DROPPED.inc(requests)

    def waited(self, seconds: float) -> None:
        """Time the requests of a flush spent queued, all together."""
        with self._lock:
            self._totals.queue_wait_seconds += seconds

    def forwarded(self, seconds: float, lengths: list[int]) -> None:
        """One forward of `len(lengths)` rows of these token lengths."""
        FORWARD_SECONDS.observe(seconds)
        FORWARD_ROWS.observe(len(lengths))
        with self._lock:
            t = self._totals
            t.forward_seconds += seconds
            t.forwards += 1
            t.forward_rows += len(lengths)
            t.padded_tokens += len(lengths) * max(lengths)
            t.real_tokens += sum(lengths)

    def served(self, requests: int, rows: int, seconds: float, model_threads: int) -> None:
        """A flush answered. With N model threads each is busy with its own flush, so the rate
        of one flush times N is what the batcher serves."""
        rate = rows / seconds * model_threads if seconds > 0 else None
        with self._lock:
            t = self._totals
            t.requests += requests
            t.rows += rows
            t.busy_seconds += seconds
            if rate is not None:
                t.rows_per_s_ema = (
                    rate if t.rows_per_s_ema is None else 0.8 * t.rows_per_s_ema + 0.2 * rate
                )

    def snapshot(self, adapter_swaps: int) -> dict:
        """The totals as /info shows them; `adapter_swaps` comes from the batching in use."""
        t = self._totals
        return {
            "requests": t.requests,
            "rows": t.rows,
            "forwards": t.forwards,
            "mean_forward_rows": t.forward_rows / t.forwards if t.forwards else None,
            "padding_fraction": 1 - t.real_tokens / t.padded_tokens if t.padded_tokens else None,
            "rejected": t.rejected,
            "dropped_cancelled": t.dropped,
            "adapter_swaps": adapter_swaps,
            "busy_seconds": round(t.busy_seconds, 3),
            "forward_seconds": round(t.forward_seconds, 3),
            "queue_wait_seconds": round(t.queue_wait_seconds, 3),
            "mean_forward_ms": _mean_ms(t.forward_seconds, t.forwards),
            "mean_queue_wait_ms": _mean_ms(t.queue_wait_seconds, t.requests),
            "rows_per_s": t.rows_per_s_ema,
        }


def _mean_ms(total_seconds: float, count: int) -> float | None:
    return round(total_seconds / count * 1000, 2) if count else None
