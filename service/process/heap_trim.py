"""Returning freed heap pages to the OS between forwards (glibc `malloc_trim`).

Mixed batches come in many shapes (rows x tokens), and glibc keeps the activation memory each
shape freed, fragmented across its heaps: in the serving benchmark a mixed-batching server grew
~100 MB past its adapter cache this way. Trimming per batch would make every forward fault its
pages in again; trimming at most once per interval pays that once per interval instead.
Elsewhere than glibc (musl, macOS) there is no `malloc_trim`, and under jemalloc (see
`service.process.allocator`) glibc's heaps hold nothing to trim: the trimmer then does nothing.
"""

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

from service.process.allocator import active_allocator

TRIMS = Counter("listserve_heap_trims", "malloc_trim calls by the model thread")
TRIM_SECONDS = Counter("listserve_heap_trim_seconds", "Time spent in malloc_trim")


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    if active_allocator() != "system":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


class HeapTrimmer:
    """Calls `malloc_trim(0)` when `interval_s` has passed since the last call; 0 disables."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s < 0:
            raise ValueError(f"heap trim interval must be >= 0 seconds, got {interval_s}")
        self.interval_s = interval_s
        self.trims = 0
        self.seconds = 0.0
        self._clock = clock
        self._last = clock()
        self._malloc_trim = _glibc_malloc_trim() if interval_s > 0 else None
        self._lock = threading.Lock()  # several model threads share one trimmer

    @property
    def active(self) -> bool:
        return self._malloc_trim is not None

    def maybe_trim(self) -> bool:
        """Trim if due and no other thread is trimming; True when it ran."""
        if self._malloc_trim is None or not self._due():
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if not self._due():  # another thread trimmed while this one checked
                return False
            started = time.perf_counter()
            self._malloc_trim(0)
            elapsed = time.perf_counter() - started
            TRIM_SECONDS.inc(elapsed)
            self.seconds += elapsed
            TRIMS.inc()
            self.trims += 1
            self._last = self._clock()
            return True
        finally:
            self._lock.release()

    def _due(self) -> bool:
        return self._clock() - self._last >= self.interval_s
