"""HeapTrimmer: gives freed heap pages back to the OS, at most once per interval."""

import asyncio
import threading

import psutil
import pytest
import torch

from list_core.inference import Row
from service.process import heap_trim
from service.process.heap_trim import HeapTrimmer
from tests.serving.conftest import make_batcher
from tests.serving.serving_texts import TEXTS

glibc_only = pytest.mark.skipif(not HeapTrimmer(1.0).active, reason="no glibc malloc_trim")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@glibc_only
def test_trim_returns_freed_heap_pages_that_glibc_would_keep():
    """64 KB blocks live in the heap; with one block still live above them, glibc cannot shrink
    the heap top, so freeing the rest keeps their pages resident until a trim."""
    blocks = [torch.ones(16 * 1024) for _ in range(3000)]  # ~190 MB, each below mmap threshold
    pinned = torch.ones(16 * 1024)
    del blocks
    before = rss_mb()
    clock = FakeClock()
    trimmer = HeapTrimmer(5.0, clock=clock)
    clock.now += 5.0
    assert trimmer.maybe_trim()
    assert before - rss_mb() > 100
    del pinned


def test_model_threads_due_at_once_trim_once():
    """Two model threads finishing flushes together must not both trim the same heap."""
    clock = FakeClock()
    trimmer = HeapTrimmer(5.0, clock=clock)
    calls: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def slow_trim(pad: int) -> int:
        calls.append(pad)
        entered.set()
        release.wait(5)
        return 1

    trimmer._malloc_trim = slow_trim
    clock.now += 5.0
    first = threading.Thread(target=trimmer.maybe_trim)
    first.start()
    assert entered.wait(5)
    assert not trimmer.maybe_trim()  # the other thread is trimming
    release.set()
    first.join()
    assert not trimmer.maybe_trim()  # and it has just trimmed
    assert calls == [0] and trimmer.trims == 1


def test_trims_at_most_once_per_interval():
    clock = FakeClock()
    trimmer = HeapTrimmer(5.0, clock=clock)
    if not trimmer.active:
        pytest.skip("no glibc malloc_trim")
    assert not trimmer.maybe_trim()
    clock.now += 4.9
    assert not trimmer.maybe_trim()
    clock.now += 0.2
    assert trimmer.maybe_trim()
    assert not trimmer.maybe_trim()
    clock.now += 5.0
    assert trimmer.maybe_trim()
    assert trimmer.trims == 2


def test_zero_interval_never_trims():
    clock = FakeClock()
    trimmer = HeapTrimmer(0.0, clock=clock)
    clock.now += 1e6
    assert not trimmer.active
    assert not trimmer.maybe_trim()
    assert trimmer.trims == 0


@glibc_only
def test_under_jemalloc_there_is_nothing_to_trim(monkeypatch):
    assert HeapTrimmer(5.0).active
    monkeypatch.setattr(heap_trim, "active_allocator", lambda: "jemalloc")
    clock = FakeClock()
    trimmer = HeapTrimmer(5.0, clock=clock)
    clock.now += 5.0
    assert not trimmer.active
    assert not trimmer.maybe_trim()


def test_negative_interval_is_refused():
    with pytest.raises(ValueError, match="heap trim interval"):
        HeapTrimmer(-1.0)


@glibc_only
def test_model_thread_trims_between_flushes(tiny_backbone, make_model):
    model = make_model(1)
    batcher = make_batcher(tiny_backbone, heap_trim_interval_s=1e-6)

    async def scenario() -> None:
        await batcher.start()
        try:
            for text in TEXTS[:3]:
                await batcher.submit([Row(model, text)])
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert batcher.stats()["heap_trims"] >= 2


def test_setting_defaults_to_trimming_and_refuses_negative_intervals():
    from pydantic import ValidationError

    from service.settings import Settings

    assert Settings().expert.heap_trim_interval_s > 0
    with pytest.raises(ValidationError, match="heap_trim_interval_s"):
        Settings(heap_trim_interval_s=-1)
