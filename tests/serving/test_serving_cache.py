"""AdapterCache: byte budget with LRU eviction, single-flight loads, versions side by side."""

import asyncio
import mmap
import threading
import time
import tracemalloc

import pytest
from prometheus_client import REGISTRY

from list_core.adapters import AdapterConfig
from list_core.artifact import load_task_model, save_task_model
from list_core.backbone import load_backbone
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from service.serving.adapter_cache import (
    ENTRY_OVERHEAD_BYTES,
    AdapterCache,
    AdapterKey,
    model_bytes,
)


def key(task: str, version: int = 1) -> AdapterKey:
    return AdapterKey("tenant-a", task, version, f"/store/{task}/{version}", "")


class CountingLoader:
    """Builds a distinct model per key, counting calls and the threads they ran on."""

    def __init__(self, make_model, delay_s: float = 0.0) -> None:
        self.make_model = make_model
        self.delay_s = delay_s
        self.calls: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, k: AdapterKey):
        with self.lock:
            self.calls.append((k.task_id, k.version))
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.make_model(seed=hash((k.task_id, k.version)) % 1000)


def test_budget_evicts_least_recently_used(make_model):
    loader = CountingLoader(make_model)
    size = model_bytes(make_model(0))
    cache = AdapterCache(loader, budget_bytes=int(size * 2.5))

    async def scenario():
        a = await cache.get(key("a"))
        await cache.get(key("b"))
        assert await cache.get(key("a")) is a  # hit; now b is least recently used
        await cache.get(key("c"))  # over budget -> evict b
        return cache.stats()

    stats = asyncio.run(scenario())
    assert key("a") in cache and key("c") in cache and key("b") not in cache
    assert stats["entries"] == 2
    assert stats["bytes"] == 2 * size <= cache.budget_bytes
    assert stats["evictions"] == 1
    assert (stats["hits"], stats["misses"], stats["loads"]) == (1, 3, 3)
    assert stats["load_ms_p99"] is not None and stats["load_ms_p99"] > 0
    assert len(loader.threads) == 1  # the cache's one loader thread, first come first served


def test_model_bytes_counts_task_tensors_in_pages_and_their_objects(make_model, tiny_backbone):
    model = make_model(1)
    tensors = sum(p.numel() * 4 for p in model.state_dict().values())
    pages = -(-tensors // mmap.PAGESIZE) * mmap.PAGESIZE
    backbone_bytes = sum(p.numel() * 4 for p in tiny_backbone.encoder.parameters())
    assert model_bytes(model) == pages + ENTRY_OVERHEAD_BYTES
    assert tensors <= pages < tensors + mmap.PAGESIZE
    assert model_bytes(model) < backbone_bytes


def test_the_entry_overhead_covers_a_loaded_models_python_objects(minilm_path, tmp_path):
    """The per-entry allowance must not be below what tracemalloc sees a loaded MiniLM model
    (the benchmarks' backbone) allocate in Python; its tensors live in their own memory map."""
    backbone = load_backbone(str(minilm_path), "cpu")
    spec = TaskSpec.create(["negative", "positive"])
    save_task_model(TaskModel(backbone, spec, "list", AdapterConfig(), 64), backbone, tmp_path)
    load_task_model(tmp_path, backbone)  # one-off lazy imports and caches
    tracemalloc.start()
    try:
        models = [load_task_model(tmp_path, backbone) for _ in range(20)]
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(models) == 20
    assert 4 * 1024 < traced / 20 <= ENTRY_OVERHEAD_BYTES


def test_a_load_in_flight_is_charged_and_room_is_made_before_it_runs(make_model):
    """The model a load builds is resident before it is inserted: with the cache full, the LRU
    entry goes first, and the charge is returned when the load ends (or fails)."""
    size = model_bytes(make_model(0))
    release = threading.Event()
    loader = CountingLoader(make_model)
    blocked = {"c", "d"}

    def load(k: AdapterKey):
        if k.task_id in blocked:
            release.wait(5)
            if k.task_id == "d":
                raise OSError("disk gone")
        return loader(k)

    cache = AdapterCache(load, budget_bytes=int(size * 2.5))

    async def scenario():
        await cache.get(key("a"))
        await cache.get(key("b"))
        await cache.get(key("a"))  # b is now least recently used
        loading = asyncio.ensure_future(cache.get(key("c")))
        await asyncio.sleep(0.05)
        during = cache.stats(), key("b") in cache
        release.set()
        await loading
        after = cache.stats()
        release.clear()
        failing = asyncio.ensure_future(cache.get(key("d")))
        await asyncio.sleep(0.05)
        while_failing = cache.stats()
        release.set()
        with pytest.raises(OSError):
            await failing
        return during, after, while_failing, cache.stats()

    (during, b_resident), after, while_failing, final = asyncio.run(scenario())
    assert not b_resident and during["entries"] == 1
    assert during["bytes"] == 2 * size  # a, plus c's charge while it loads
    assert after["bytes"] == 2 * size and after["entries"] == 2  # a and c
    assert while_failing["bytes"] == 2 * size and while_failing["entries"] == 1  # a made room
    assert final["bytes"] == size and final["entries"] == 1  # the failed load's charge is back


def test_single_flight_loads_once_under_twenty_concurrent_gets(make_model):
    loader = CountingLoader(make_model, delay_s=0.1)
    cache = AdapterCache(loader, budget_bytes=10**9)

    async def scenario():
        loop_thread = threading.current_thread().name
        models = await asyncio.gather(*(cache.get(key("a")) for _ in range(20)))
        return loop_thread, models

    loop_thread, models = asyncio.run(scenario())
    assert loader.calls == [("a", 1)]
    assert all(m is models[0] for m in models)
    assert loop_thread not in loader.threads  # loaded off the event loop
    stats = cache.stats()
    assert stats["loads"] == 1
    assert stats["load_ms_p99"] >= 100 > stats["load_cpu_ms_p99"]  # the 0.1 s sleep is no work


def test_cancelled_waiter_does_not_cancel_the_shared_load(make_model):
    loader = CountingLoader(make_model, delay_s=0.1)
    cache = AdapterCache(loader, budget_bytes=10**9)

    async def scenario():
        first = asyncio.ensure_future(cache.get(key("a")))
        second = asyncio.ensure_future(cache.get(key("a")))
        await asyncio.sleep(0.02)
        first.cancel()
        return await second

    model = asyncio.run(scenario())
    assert model is not None and len(loader.calls) == 1 and key("a") in cache


def test_versions_of_one_task_are_cached_side_by_side(make_model):
    """A promoted older version or a pinned one is served as asked: the registry, not the
    cache, says which version a request gets."""
    loader = CountingLoader(make_model)
    cache = AdapterCache(loader, budget_bytes=10**9)

    async def scenario():
        old = await cache.get(key("a", 1))
        new = await cache.get(key("a", 2))
        assert new is not old
        assert await cache.get(key("a", 1)) is old  # a rollback to 1 is a hit
        assert await cache.get(key("a", 2)) is new

    asyncio.run(scenario())
    assert loader.calls == [("a", 1), ("a", 2)]
    assert key("a", 1) in cache and key("a", 2) in cache


def test_evict_task_drops_all_its_versions(make_model):
    cache = AdapterCache(CountingLoader(make_model), budget_bytes=10**9)

    async def scenario():
        await cache.get(key("a", 3))
        await cache.get(key("b", 1))

    asyncio.run(scenario())
    assert cache.evict_task("a") == 1
    assert key("a", 3) not in cache and key("b", 1) in cache
    assert cache.stats()["bytes"] == model_bytes(make_model(0))


def test_failed_load_propagates_and_is_retried(make_model):
    attempts = []

    def flaky(k: AdapterKey):
        attempts.append(k)
        if len(attempts) == 1:
            raise OSError("store unavailable")
        return make_model(2)

    cache = AdapterCache(flaky, budget_bytes=10**9)

    async def scenario():
        with pytest.raises(OSError, match="store unavailable"):
            await cache.get(key("a"))
        return await cache.get(key("a"))

    assert asyncio.run(scenario()) is not None
    assert len(attempts) == 2


def test_metrics_are_shared_across_caches(make_model):
    def hits() -> float:
        return REGISTRY.get_sample_value("listserve_adapter_cache_hits_total") or 0.0

    before = hits()
    for _ in range(2):  # a second cache must not re-register the metrics
        cache = AdapterCache(CountingLoader(make_model), budget_bytes=10**9)

        async def scenario(c=cache):
            await c.get(key("a"))
            await c.get(key("a"))

        asyncio.run(scenario())
    assert hits() == before + 2
    assert REGISTRY.get_sample_value("listserve_adapter_load_seconds_count") >= 2


def test_a_leased_adapter_is_never_evicted_and_stays_counted(make_model):
    loader = CountingLoader(make_model)
    size = model_bytes(make_model(0))
    cache = AdapterCache(loader, budget_bytes=int(size * 2.5))

    async def scenario():
        held = await cache.acquire(key("a"))
        for name in "bcd":  # enough misses to evict `a` twice over if it were not held
            await cache.get(key(name))
        assert key("a") in cache and await cache.get(key("a")) is held.model
        assert cache.stats()["bytes"] <= cache.budget_bytes
        held.release()
        held.release()  # idempotent
        assert cache.stats()["leases"] == 0

    asyncio.run(scenario())
    assert loader.calls.count(("a", 1)) == 1


def test_leases_count_against_the_budget_until_released(make_model):
    """Queued requests hold their adapters: the cache must count them, not forget them."""
    size = model_bytes(make_model(0))
    cache = AdapterCache(CountingLoader(make_model), budget_bytes=int(size * 2.5))

    async def scenario():
        leases = [await cache.acquire(key(name)) for name in "abc"]
        held = cache.stats()
        for lease in leases:
            lease.release()
        return held, cache.stats()

    held, after = asyncio.run(scenario())
    assert (held["bytes"], held["leases"]) == (3 * size, 3)  # over budget only while held
    assert after["bytes"] <= cache.budget_bytes and after["leases"] == 0
    assert key("a") not in cache  # released first, least recently used: evicted


def test_an_evicted_version_stays_counted_while_leased(make_model):
    size = model_bytes(make_model(0))
    cache = AdapterCache(CountingLoader(make_model), budget_bytes=10**9)

    async def scenario():
        old = await cache.acquire(key("a", 1))
        await cache.get(key("a", 2))
        assert cache.evict_task("a") == 2
        assert cache.stats()["bytes"] == size  # the leased one, no longer resident
        old.release()
        assert cache.stats()["bytes"] == 0

    asyncio.run(scenario())
