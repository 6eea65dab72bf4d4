"""How many rows the scripted serving forward could not take because of their tuner, by tuner.

Such rows (prefix, prompt and P-tuning, partial, LoRA and BitFit today; docs/tuners.md) run on
the eager forward with the rest of their batch: visibly, through `/info` and the
`listserve_eager_fallback_rows_total` metric, which read these counts.
"""

import threading
from collections import Counter


class FallbackCounts:
    """Thread-safe counts of eager-fallback rows per tuner name."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, tuners: list[str]) -> None:
        with self._lock:
            self._counts.update(tuners)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


EAGER_FALLBACKS = FallbackCounts()
