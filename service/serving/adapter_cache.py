"""An LRU of loaded task models with a byte budget, so any number of registered adapters fits.

Only what the budget allows stays resident; everything else is re-read from the adapter store on
demand. Cold loads run in a worker thread (never on the event loop) and concurrent requests for
the same cold adapter share one load (single-flight). Each (task, version) is its own key: which
version a request gets is the registry's answer (the version the task serves, or the one the
request pins), so a task's versions may be cached side by side, and one no longer asked for
leaves by the LRU like any other.

A request holds its adapter through a lease (`acquire`) until its forward is done. A leased
adapter is never evicted, and one evicted while leased stays counted until released, so the
budget bounds what the process really holds: otherwise every queued request could keep an
evicted adapter alive outside it (at concurrency 64, ~64 adapters over the budget).
"""

import asyncio
import mmap
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from list_core.task_model import TaskModel
from service.serving.metrics import (
    CACHE_BYTES,
    CACHE_ENTRIES,
    CACHE_EVICTIONS,
    CACHE_HITS,
    CACHE_LOAD_SECONDS,
    CACHE_MISSES,
)


@dataclass(frozen=True)
class AdapterKey:
    """Everything needed to load one registered adapter version; cached by (task_id, version)."""

    tenant_id: str
    task_id: str
    version: int
    path: str
    sha256: str

    @property
    def cache_key(self) -> tuple[str, int]:
        return (self.task_id, self.version)


@dataclass(eq=False)
class _Entry:
    """A loaded model, its size, and how many requests hold it (`pins`).

    `resident` is False once the entry left the LRU (evicted or dropped); its bytes
    stay counted until the last pin is released.
    """

    model: TaskModel
    size: int
    pins: int = 0
    resident: bool = True


class AdapterLease:
    """One request's hold on a cached model; `release()` (idempotent) when its forward is done."""

    def __init__(self, cache: "AdapterCache", entry: _Entry) -> None:
        self._cache = cache
        self._entry: _Entry | None = entry
        self.model = entry.model

    def release(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            self._cache._unpin(entry)


# What a cached model holds beyond its tensor bytes: its module tree and parameter objects
# (Python and C++). Measured on a MiniLM similarity-head model, RSS grew ~32 KiB per loaded
# model past its page-rounded tensor bytes (300 loads; tracemalloc saw ~19 KiB of it as Python
# objects). Uncounted, 226 cached adapters held ~7 MB more than the budget said.
ENTRY_OVERHEAD_BYTES = 32 * 1024


def model_bytes(model: TaskModel) -> int:
    """What caching `model` costs: its own tensors (adapters + head; the shared backbone is not
    counted) in whole pages, as its buffer is mapped, plus its objects."""
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict(keep_vars=True).values())
    return -(-tensors // mmap.PAGESIZE) * mmap.PAGESIZE + ENTRY_OVERHEAD_BYTES


class AdapterCache:
    """LRU of `TaskModel`s keyed by (task_id, version), bounded by the bytes of their tensors.

    Loads run on `load_threads` threads of the cache's own (default: one). A load is ~2 ms of
    mostly GIL-holding Python, so parallel loader threads cannot finish more loads per second;
    they only interleave, stretching every load. One thread runs them first come, first served.
    """

    def __init__(
        self,
        loader: Callable[[AdapterKey], TaskModel],
        budget_bytes: int,
        load_threads: int = 1,
    ) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self._loader = loader
        self._executor = ThreadPoolExecutor(load_threads, thread_name_prefix="listserve-load")
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._bytes = 0  # resident entries, leased ones no longer resident, loads in flight
        self._largest_entry = 0  # what a load in flight is charged until its model is in
        self._leases = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._loads = 0
        self._load_seconds: list[float] = []  # the load itself, in its worker thread
        self._wait_seconds: list[float] = []  # what a request saw: waiting for a thread + load
        self._cpu_seconds: list[float] = []  # the loader thread's CPU time: the load's own work

    async def get(self, key: AdapterKey) -> TaskModel:
        """The model for `key`, loading it off the event loop (once) when it is not resident.

        It may be evicted as soon as the caller awaits anything; a caller that holds it across
        awaits (a request waiting for its batch) uses `acquire`.
        """
        entry = self._entries.get(key.cache_key)
        if entry is not None:
            self._entries.move_to_end(key.cache_key)
            self._hits += 1
            CACHE_HITS.inc()
            return entry.model
        self._misses += 1
        CACHE_MISSES.inc()
        pending = self._loading.get(key.cache_key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key.cache_key] = pending
            task = asyncio.get_running_loop().create_task(self._load(key, pending))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)
        # shield: one waiter being cancelled (client gone) must not cancel the shared load.
        return await asyncio.shield(pending)

    async def acquire(self, key: AdapterKey) -> AdapterLease:
        """Like `get`, but the model stays counted and unevictable until the lease is released."""
        model = await self.get(key)
        entry = self._entries.get(key.cache_key)
        if entry is None:  # evicted between its load and this waiter waking up
            entry = _Entry(model, model_bytes(model), resident=False)
            self._add_bytes(entry.size)
        entry.pins += 1
        self._leases += 1
        self._shrink()
        return AdapterLease(self, entry)

    def _unpin(self, entry: _Entry) -> None:
        entry.pins -= 1
        self._leases -= 1
        if entry.pins:
            return
        if entry.resident:
            self._shrink()  # it may have been the only thing keeping the cache over budget
        else:
            self._add_bytes(-entry.size)

    def _timed_load(self, key: AdapterKey) -> tuple[TaskModel, float, float]:
        """The model, wall seconds and loader-thread CPU seconds (wall minus CPU is the time
        spent waiting for the GIL or a core)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        model = self._loader(key)
        return model, time.perf_counter() - started, time.thread_time() - cpu_started

    async def _load(self, key: AdapterKey, pending: asyncio.Future) -> None:
        """Load `key` on the loader thread. Until its model is inserted the load is charged as
        large as the largest entry so far, and room is made for it first: the model it builds
        is resident from the moment the loader allocates it, so a full cache must not hold a
        whole budget besides."""
        started = time.perf_counter()
        reserved = self._largest_entry
        self._add_bytes(reserved)
        self._shrink()
        try:
            loop = asyncio.get_running_loop()
            model, load_seconds, cpu_seconds = await loop.run_in_executor(
                self._executor, self._timed_load, key
            )
        except Exception as error:
            self._loading.pop(key.cache_key, None)
            pending.set_exception(error)
            pending.exception()  # mark retrieved: a load nobody awaits any more must not warn
            return
        except BaseException:
            self._loading.pop(key.cache_key, None)
            pending.cancel()
            raise
        finally:
            self._add_bytes(-reserved)
        self._loads += 1
        self._load_seconds.append(load_seconds)
        self._wait_seconds.append(time.perf_counter() - started)
        self._cpu_seconds.append(cpu_seconds)
        del self._load_seconds[:-1024], self._wait_seconds[:-1024], self._cpu_seconds[:-1024]
        CACHE_LOAD_SECONDS.observe(load_seconds)
        self._loading.pop(key.cache_key, None)
        self._insert(key, model)
        pending.set_result(model)

    def _insert(self, key: AdapterKey, model: TaskModel) -> None:
        entry = _Entry(model, model_bytes(model))
        self._largest_entry = max(self._largest_entry, entry.size)
        self._entries[key.cache_key] = entry
        self._add_bytes(entry.size)
        CACHE_ENTRIES.inc()
        self._shrink()

    def _shrink(self) -> None:
        """Evict least recently used entries nobody holds until the bytes fit the budget."""
        if self._bytes <= self.budget_bytes:
            return
        for cache_key in [k for k, entry in self._entries.items() if not entry.pins]:
            self._drop(cache_key)
            if self._bytes <= self.budget_bytes:
                return

    def _drop(self, cache_key: tuple[str, int]) -> None:
        """Remove an entry from the LRU; a leased one stays counted until released."""
        entry = self._entries.pop(cache_key)
        entry.resident = False
        CACHE_ENTRIES.dec()
        self._evictions += 1
        CACHE_EVICTIONS.inc()
        if not entry.pins:
            self._add_bytes(-entry.size)

    def _add_bytes(self, size: int) -> None:
        self._bytes += size
        CACHE_BYTES.inc(size)

    def close(self) -> None:
        """Stop the loader thread; loads not yet started are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def evict_task(self, task_id: str) -> int:
        """Drop every resident version of a task (deleted); returns how many."""
        dropped = [k for k in self._entries if k[0] == task_id]
        for cache_key in dropped:
            self._drop(cache_key)
        return len(dropped)

    def __contains__(self, key: AdapterKey) -> bool:
        return key.cache_key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        lookups = self._hits + self._misses
        latencies = sorted(self._load_seconds)
        waits = sorted(self._wait_seconds)
        return {
            "hits": self._hits,
            "misses": self._misses,
            "hit_rate": self._hits / lookups if lookups else None,
            "evictions": self._evictions,
            "loads": self._loads,
            "bytes": self._bytes,
            "budget_bytes": self.budget_bytes,
            "entries": len(self._entries),
            "leases": self._leases,
            "load_ms_p50": _percentile_ms(latencies, 0.50),
            "load_ms_p99": _percentile_ms(latencies, 0.99),
            "load_ms_max": latencies[-1] * 1000 if latencies else None,
            "load_wait_ms_p99": _percentile_ms(waits, 0.99),
            "load_cpu_ms_p50": _percentile_ms(sorted(self._cpu_seconds), 0.50),
            "load_cpu_ms_p99": _percentile_ms(sorted(self._cpu_seconds), 0.99),
        }


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
