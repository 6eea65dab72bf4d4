"""Dynamic batching of predict requests across tasks and tenants, on dedicated model threads.

Requests wait in a bounded queue. A model thread (never the event loop) takes them in
flushes: a flush closes when it holds `max_batch_rows` rows or about `max_batch_tokens` tokens,
or when its oldest request has waited `max_wait_ms`, and at once when no other request is on
its way (the predict route announces each one with `arriving` until it submits), since
waiting then only adds latency. While rows wait for a cold adapter load (announced with
`incoming`), it may stay open up to `max_wait_for_loads_ms` for them. The flush is tokenised
in one call per task, sorted by token length (so rows of similar length share a forward and
padding stays small) and cut into forward chunks that respect both limits. Rows of different
tasks share a chunk: each row carries its own adapter through the backbone
(`MixedAdapterPlan`).

`mode` (setting `LISTSERVE_BATCH_MODE`) also offers the baselines the serving benchmark compares
against, with the same queue and thread: `unbatched` (one forward per request), `per_adapter`
(each task's rows form their own batches, as model-multiplexing servers do) and `swap` (one
adapter slot is made active by copying a task's weights into it, its rows run, then the next is
swapped in, as single-model PEFT serving does).

`model_threads` (setting `LISTSERVE_MODEL_THREADS`) runs that many model threads on the one
backbone, each taking its own flushes from the shared queue (in `swap` mode each has its own
adapter slot, as separate single-model workers would). On a CPU, N threads with 1/N of the
cores each as torch threads keep every core busy: with one thread, its torch threads wait for
each other at every small op of a forward.
"""

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from prometheus_client import Counter, Gauge, Histogram

from list_core.adapters import AdapterConfig, AdapterSet, check_apply_mode
from list_core.backbone import Backbone
from list_core.inference import Row, encode_rows, forward_encoded
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel
from service.cpu_priority import lower_this_threads_priority
from service.heap_trim import HeapTrimmer

log = logging.getLogger(__name__)

BATCH_MODES = ("mixed", "unbatched", "per_adapter", "swap")
MODE_ENV = "LISTSERVE_BATCH_MODE"

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


# How often a flush held open for incoming rows checks whether they are still on their way.
_RECHECK_INCOMING_S = 0.002


class QueueFullError(RuntimeError):
    """The queue cannot take this request now; answer 429 with `Retry-After: retry_after_s`."""

    def __init__(self, retry_after_s: float, queued_rows: int = 0, max_queue_rows: int = 0) -> None:
        super().__init__(
            f"prediction queue is full ({queued_rows} of {max_queue_rows} rows waiting); "
            f"retry after {retry_after_s:.2f}s"
        )
        self.retry_after_s = retry_after_s
        self.queued_rows = queued_rows
        self.max_queue_rows = max_queue_rows


class RequestTooLargeError(ValueError):
    """More rows in one request than the queue can ever hold (answer 413)."""


class BatcherStoppedError(RuntimeError):
    """The batcher is not running (not started, or shutting down); answer 503."""


@dataclass(eq=False)
class _Request:
    rows: list[Row]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float
    tokens: int

    def gone(self) -> bool:
        """The awaiting client cancelled (disconnected) or was already answered."""
        return self.future.done()


@dataclass(eq=False)
class _Item:
    """One row of a flush, with where its answer goes."""

    request: _Request
    position: int
    model: TaskModel
    encoded: EncodedRow


@dataclass
class _Counters:
    requests: int = 0
    rows: int = 0
    forwards: int = 0
    forward_rows: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    rejected: int = 0
    dropped: int = 0
    swaps: int = 0
    busy_seconds: float = 0.0
    forward_seconds: float = 0.0
    queue_wait_seconds: float = 0.0
    rows_per_s_ema: float | None = None
    modes: dict[str, int] = field(default_factory=dict)


_STOP = object()
T = TypeVar("T")


def estimate_tokens(row: Row) -> int:
    """Cheap pre-tokenisation guess used only to decide when a flush is full (~4 chars/token)."""
    chars = len(row.text) + len(row.text_b or "")
    return min(row.model.max_length, chars // 4 + 8)


def resolve_mode(mode: str | None) -> str:
    mode = (mode or os.environ.get(MODE_ENV) or "mixed").strip().lower()
    if mode not in BATCH_MODES:
        raise ValueError(f"{MODE_ENV} must be one of {BATCH_MODES}, got {mode!r}")
    return mode


class DynamicBatcher:
    """Collects rows from concurrent requests and runs them on the shared backbone in batches."""

    def __init__(
        self,
        backbone: Backbone,
        max_batch_rows: int = 64,
        max_batch_tokens: int = 8192,
        max_wait_ms: float = 5.0,
        max_wait_for_loads_ms: float = 50.0,
        max_queue_rows: int = 1024,
        apply_mode: str = "gather",
        mode: str | None = None,
        adaptive_wait: bool = True,
        heap_trim_interval_s: float = 0.0,
        model_threads: int = 1,
        model_thread_nice: int = 0,
    ) -> None:
        for name, value in (
            ("max_batch_rows", max_batch_rows),
            ("max_batch_tokens", max_batch_tokens),
            ("max_queue_rows", max_queue_rows),
            ("model_threads", model_threads),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (
            ("max_wait_ms", max_wait_ms),
            ("max_wait_for_loads_ms", max_wait_for_loads_ms),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        check_apply_mode(apply_mode)
        self.backbone = backbone
        self.max_batch_rows = max_batch_rows
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_wait_for_loads_s = max_wait_for_loads_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self.apply_mode = apply_mode
        self.mode = resolve_mode(mode)
        self.adaptive_wait = adaptive_wait
        self.model_threads = model_threads
        self.model_thread_nice = model_thread_nice
        self._applied_nice: int | None = None  # what the model threads run at, once started
        self._arriving = 0  # requests on their way to `submit`; event loop only
        # Not SimpleQueue: in CPython 3.11 its get(timeout) can block for good when another
        # model thread takes the request whose put woke it (see the batcher tests).
        self._queue: queue.Queue = queue.Queue()
        self._queued_rows = 0
        self._incoming_rows = 0  # changed on the event loop only; model threads read it
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running = False
        self._counters = _Counters()
        self._counters_lock = threading.Lock()
        self._local = threading.local()  # each model thread's swap slots
        self._heap = HeapTrimmer(heap_trim_interval_s)

    # ---- event-loop side -------------------------------------------------------------------

    async def start(self) -> None:
        if self._threads:
            return
        self._running = True
        self._threads = [
            threading.Thread(target=self._run, name=f"listserve-model-{index}", daemon=True)
            for index in range(self.model_threads)
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Stop taking requests, finish what is queued, and join the model threads."""
        threads, self._threads = self._threads, []
        if not threads:
            return
        self._running = False
        for _ in threads:  # one each: a thread stops at the first it takes
            self._queue.put(_STOP)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        while True:  # a request that raced past the running check after _STOP was queued
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if request is not _STOP:
                self._take([request])
                _deliver(request, error=BatcherStoppedError("the prediction batcher stopped"))

    @property
    def running(self) -> bool:
        return self._running and bool(self._threads)

    async def submit(self, rows: list[Row]) -> list[list[float]]:
        """Label probabilities per row, in order. Raises `QueueFullError` when overloaded."""
        if not rows:
            return []
        if not self.running:
            raise BatcherStoppedError("the prediction batcher is not running")
        if len(rows) > self.max_queue_rows:
            raise RequestTooLargeError(
                f"{len(rows)} rows in one request; at most {self.max_queue_rows} fit the queue"
            )
        with self._lock:
            if self._queued_rows + len(rows) > self.max_queue_rows:
                self._counters.rejected += 1
                REJECTED.inc()
                raise QueueFullError(self._retry_after(), self._queued_rows, self.max_queue_rows)
            self._queued_rows += len(rows)
            QUEUE_ROWS.inc(len(rows))
        loop = asyncio.get_running_loop()
        request = _Request(
            rows=list(rows),
            future=loop.create_future(),
            loop=loop,
            enqueued=time.monotonic(),
            tokens=sum(estimate_tokens(row) for row in rows),
        )
        self._queue.put(request)
        return await request.future

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a request from its start until it submits (or fails), so a flush that
        could take it waits for it (`_worth_waiting`). Event loop only.

        It leaves the count just before it is submitted; a flush closing in that instant
        leaves it to the next one, which only costs batching.
        """
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    @contextlib.contextmanager
    def incoming(self, rows: int) -> Iterator[None]:
        """Announce `rows` that will be submitted once their adapter is loaded.

        Where most requests need a cold load, rows reach the queue one load apart; a flush
        closed after `max_wait_ms` then runs one or two rows, and two model threads running
        such forwards take the cores the loads need. Knowing rows are coming, a flush waits
        for them (up to `max_wait_for_loads_ms`) and runs them together. Event loop only.

        Rows leave the count just before they are submitted; a flush closing in that instant
        leaves them to the next one, which only costs batching.
        """
        self._incoming_rows += rows
        INCOMING_ROWS.inc(rows)
        try:
            yield
        finally:
            self._incoming_rows -= rows
            INCOMING_ROWS.dec(rows)

    def _worth_waiting(self) -> bool:
        """Hold a flush open only while another request is on its way to the queue.

        With nothing arriving (one client, whose next request waits for this answer) waiting
        only adds latency: at concurrency 1 a 5 ms wait doubled a ~5 ms forward's latency. A
        request announced with `arriving` is at most its registry lookup and adapter lease
        away. With `adaptive_wait` off, a flush always waits up to `max_wait_ms`.
        """
        return not self.adaptive_wait or self._arriving > 0

    def _retry_after(self) -> float:
        """Seconds until the queue has likely drained, from the measured row throughput."""
        rate = self._counters.rows_per_s_ema
        if not rate:
            return 1.0
        return round(min(30.0, max(0.05, self._queued_rows / rate)), 3)

    def stats(self) -> dict:
        c = self._counters
        return {
            "mode": self.mode,
            "apply_mode": self.apply_mode,
            "model_threads": self.model_threads,
            "torch_threads": torch.get_num_threads(),
            "model_thread_nice": self._applied_nice,
            "queued_rows": self._queued_rows,
            "incoming_rows": self._incoming_rows,
            "arriving_requests": self._arriving,
            "requests": c.requests,
            "rows": c.rows,
            "forwards": c.forwards,
            "mean_forward_rows": c.forward_rows / c.forwards if c.forwards else None,
            "padding_fraction": 1 - c.real_tokens / c.padded_tokens if c.padded_tokens else None,
            "rejected": c.rejected,
            "dropped_cancelled": c.dropped,
            "adapter_swaps": c.swaps,
            "busy_seconds": round(c.busy_seconds, 3),
            "forward_seconds": round(c.forward_seconds, 3),
            "queue_wait_seconds": round(c.queue_wait_seconds, 3),
            "mean_forward_ms": _mean_ms(c.forward_seconds, c.forwards),
            "mean_queue_wait_ms": _mean_ms(c.queue_wait_seconds, c.requests),
            "rows_per_s": c.rows_per_s_ema,
            "heap_trims": self._heap.trims,
            "heap_trim_seconds": round(self._heap.seconds, 3),
        }

    # ---- model thread ----------------------------------------------------------------------

    def _run(self) -> None:
        self._applied_nice = lower_this_threads_priority(self.model_thread_nice)
        torch.set_grad_enabled(False)
        while self._serve_next():
            pass

    def _serve_next(self) -> bool:
        """Wait for requests and answer one flush of them; False once stopped.

        The flush lives only in this call: a loop variable would keep the last batch's task
        models alive while the thread waits for the next request, outside the cache's budget
        once their leases are released and the cache has evicted them."""
        first = self._queue.get()
        if first is _STOP:
            return False
        flush, stop = self._collect(first)
        self._take(flush)
        try:
            self._process(flush)
        except Exception as error:
            log.exception("batch of %d requests failed", len(flush))
            for request in flush:
                _deliver(request, error=error)
        self._heap.maybe_trim()
        return not stop

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Requests for one flush: until rows or tokens are full or the oldest has waited enough."""
        flush = [first]
        if self.mode == "unbatched":
            return flush, False
        rows, tokens = len(first.rows), first.tokens
        deadline = first.enqueued + self.max_wait_s
        for_loads = first.enqueued + self.max_wait_for_loads_s
        while rows < self.max_batch_rows and tokens < self.max_batch_tokens:
            # Re-read each round: requests stop being on their way once they are submitted.
            if self._incoming_rows:
                closes = max(deadline, for_loads)
            else:
                closes = deadline if self._worth_waiting() else 0.0
            remaining = closes - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=min(remaining, _RECHECK_INCOMING_S))
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                if remaining > 0:
                    continue
                break
            if item is _STOP:
                return flush, True
            flush.append(item)
            rows += len(item.rows)
            tokens += item.tokens
        return flush, False

    def _take(self, flush: list[_Request]) -> None:
        taken = sum(len(request.rows) for request in flush)
        with self._lock:
            self._queued_rows -= taken
        QUEUE_ROWS.dec(taken)

    def _process(self, flush: list[_Request]) -> None:
        started = time.perf_counter()
        live = self._drop_gone(flush)
        if not live:
            return
        now = time.monotonic()
        waited = sum(now - request.enqueued for request in live)
        with self._counters_lock:
            self._counters.queue_wait_seconds += waited
        items = self._encode(live)
        results: dict[_Request, list[list[float] | None]] = {
            request: [None] * len(request.rows) for request in live
        }
        if self.mode in ("mixed", "unbatched"):
            for chunk in self._chunks(items):
                self._forward(chunk, results)
        else:
            groups: dict[int, list[_Item]] = {}
            for item in items:
                groups.setdefault(id(item.model), []).append(item)
            for group in groups.values():
                slot = self._swap_in(group[0].model) if self.mode == "swap" else None
                for chunk in self._chunks(group):
                    self._forward(chunk, results, slot)
        for request, answer in results.items():
            _deliver(request, result=answer)
        self._account(live, time.perf_counter() - started)

    def _drop_gone(self, flush: list[_Request]) -> list[_Request]:
        live = [request for request in flush if not request.gone()]
        dropped = len(flush) - len(live)
        if dropped:
            with self._counters_lock:
                self._counters.dropped += dropped
            DROPPED.inc(dropped)
        return live

    def _encode(self, requests: list[_Request]) -> list[_Item]:
        """Tokenise the whole flush at once (one tokenizer call per distinct encoding),
        keeping each row's origin."""
        rows = [row for request in requests for row in request.rows]
        encoded = encode_rows(rows)
        items, cursor = [], 0
        for request in requests:
            for position, row in enumerate(request.rows):
                items.append(_Item(request, position, row.model, encoded[cursor]))
                cursor += 1
        return items

    def _chunks(self, items: list[_Item]) -> list[list[_Item]]:
        """Sort by length and cut chunks within max rows and max padded tokens.

        Under the eager forward a chunk also closes when the next row is more than twice as
        long as its shortest row and the chunk is already reasonably full, so short rows are not
        padded to long ones. The scripted forward runs its Linear layers on real tokens only, so
        there padding costs little and fuller chunks win.
        """
        split_by_length = self.backbone.scripted is None
        ordered = sorted(items, key=lambda item: len(item.encoded.input_ids))
        chunks: list[list[_Item]] = []
        current: list[_Item] = []
        for item in ordered:
            length = len(item.encoded.input_ids)
            if current:
                shortest = len(current[0].encoded.input_ids)
                full_rows = len(current) >= self.max_batch_rows
                full_tokens = (len(current) + 1) * length > self.max_batch_tokens
                bucket_break = split_by_length and length > 2 * shortest and len(current) >= 8
                if full_rows or full_tokens or bucket_break:
                    chunks.append(current)
                    current = []
            current.append(item)
        if current:
            chunks.append(current)
        return chunks

    def _forward(
        self,
        chunk: list[_Item],
        results: dict[_Request, list[list[float] | None]],
        slot: AdapterSet | None = None,
    ) -> None:
        chunk = [item for item in chunk if not item.request.gone()]
        if not chunk:
            return
        started = time.perf_counter()
        probabilities = forward_encoded(
            self.backbone,
            [item.model for item in chunk],
            [item.encoded for item in chunk],
            row_adapters=None if slot is None else [slot] * len(chunk),
            apply_mode=self.apply_mode,
        )
        elapsed = time.perf_counter() - started
        FORWARD_SECONDS.observe(elapsed)
        FORWARD_ROWS.observe(len(chunk))
        lengths = [len(item.encoded.input_ids) for item in chunk]
        with self._counters_lock:
            c = self._counters
            c.forward_seconds += elapsed
            c.forwards += 1
            c.forward_rows += len(chunk)
            c.padded_tokens += len(chunk) * max(lengths)
            c.real_tokens += sum(lengths)
        for item, probs in zip(chunk, probabilities, strict=True):
            results[item.request][item.position] = probs

    def _swap_in(self, model: TaskModel) -> AdapterSet:
        """Copy `model`'s adapter weights into this model thread's one active slot (the swap
        baseline)."""
        slots: dict[AdapterConfig, AdapterSet] = self._local.__dict__.setdefault("slots", {})
        config = model.adapter_config
        slot = slots.get(config)
        if slot is None:
            slot = AdapterSet(config, self.backbone.sites, self.backbone.hidden_size)
            slot = slot.to(self.backbone.device).requires_grad_(False)
            slots[config] = slot
        for key in slot.site_keys:
            slot.down[key].copy_(model.adapters.down[key])
            slot.up[key].copy_(model.adapters.up[key])
        with self._counters_lock:
            self._counters.swaps += 1
        ADAPTER_SWAPS.inc()
        return slot

    def _account(self, live: list[_Request], seconds: float) -> None:
        """Totals, and the served rate: with N model threads each is busy with its own flush,
        so the rate of one flush times N is what the batcher serves."""
        rows = sum(len(request.rows) for request in live)
        rate = rows / seconds * self.model_threads if seconds > 0 else None
        with self._counters_lock:
            c = self._counters
            c.requests += len(live)
            c.rows += rows
            c.busy_seconds += seconds
            if rate is not None:
                c.rows_per_s_ema = (
                    rate if c.rows_per_s_ema is None else 0.8 * c.rows_per_s_ema + 0.2 * rate
                )


def _mean_ms(total_seconds: float, count: int) -> float | None:
    return round(total_seconds / count * 1000, 2) if count else None


def _deliver(
    request: _Request,
    result: Sequence[list[float] | None] | None = None,
    error: BaseException | None = None,
) -> None:
    """Hand the answer to the request's event loop (futures are not thread-safe)."""

    def settle() -> None:
        if request.future.done():
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(list(result or []))

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        log.debug("event loop closed before a prediction could be delivered")


async def cancel_on_disconnect(
    work: Awaitable[T], disconnected: Callable[[], Awaitable[Any]]
) -> T | None:
    """Await `work`, but cancel it (so the batcher drops it) if `disconnected()` returns first.

    With Starlette, pass `request.receive` after the body was read: it only returns when the
    client goes away. Returns None when the client disconnected.
    """
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work_task, watch_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(work_task, watch_task, return_exceptions=True)
    if work_task.cancelled():
        return None
    return work_task.result()
