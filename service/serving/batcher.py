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

How a flush's rows become forwards is its `Batching`: production mixes them all
(`MixedBatching`); the baselines the serving benchmark compares against (service/serving/
baselines.py) group them otherwise, with the same queue and threads.

`model_threads` (setting `LISTSERVE_MODEL_THREADS`) runs that many model threads on the one
backbone, each taking its own flushes from the shared queue. On a CPU, N threads with 1/N of
the cores each as torch threads keep every core busy: with one thread, its torch threads wait
for each other at every small op of a forward.
"""

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence

import torch

from list_core.adapters import AdapterSet, check_apply_mode, resolve_apply_mode
from list_core.backbone import Backbone
from list_core.inference import Row, encode_rows, forward_encoded
from service.process.cpu_priority import lower_this_threads_priority
from service.process.heap_trim import HeapTrimmer
from service.serving.errors import BatcherStoppedError, QueueFullError, RequestTooLargeError
from service.serving.flush import (
    Batching,
    FlushItem,
    FlushLimits,
    QueuedRequest,
    estimate_tokens,
)
from service.serving.metrics import INCOMING_ROWS, QUEUE_ROWS
from service.serving.stats import BatcherStats
from service.settings import Settings

log = logging.getLogger(__name__)

# How often a flush held open for incoming rows checks whether they are still on their way.
_RECHECK_INCOMING_S = 0.002
_STOP = object()


class DynamicBatcher:
    """Collects rows from concurrent requests and runs them on the shared backbone in batches."""

    def __init__(
        self,
        backbone: Backbone,
        limits: FlushLimits,
        batching: Batching,
        *,
        apply_mode: str,
        model_threads: int,
        model_thread_nice: int,
        heap_trim_interval_s: float,
        adaptive_wait: bool = True,
    ) -> None:
        if model_threads < 1:
            raise ValueError(f"model_threads must be >= 1, got {model_threads}")
        check_apply_mode(apply_mode)
        self.backbone = backbone
        self.max_batch_rows = limits.max_batch_rows
        self.max_batch_tokens = limits.max_batch_tokens
        self.max_wait_s = limits.max_wait_ms / 1000.0
        self.max_wait_for_loads_s = limits.max_wait_for_loads_ms / 1000.0
        self.max_queue_rows = limits.max_queue_rows
        self.batching = batching
        self.apply_mode = apply_mode
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
        self._stats = BatcherStats()
        self._heap = HeapTrimmer(heap_trim_interval_s)

    @classmethod
    def from_settings(
        cls, backbone: Backbone, settings: Settings, batching: Batching, model_threads: int
    ) -> "DynamicBatcher":
        """The batcher the settings describe, on the serving `backbone`; `model_threads` is the
        count resolved for this machine (service/process/threads.py)."""
        expert = settings.expert
        return cls(
            backbone,
            FlushLimits.from_settings(settings),
            batching,
            apply_mode=resolve_apply_mode(
                expert.apply_mode, backbone.device, backbone.scripted is not None
            ),
            model_threads=model_threads,
            model_thread_nice=expert.compute_nice,
            heap_trim_interval_s=expert.heap_trim_interval_s,
        )

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
                self._stats.rejected()
                raise QueueFullError(self._retry_after(), self._queued_rows, self.max_queue_rows)
            self._queued_rows += len(rows)
            QUEUE_ROWS.inc(len(rows))
        loop = asyncio.get_running_loop()
        request = QueuedRequest(
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
        rate = self._stats.rows_per_s
        if not rate:
            return 1.0
        return round(min(30.0, max(0.05, self._queued_rows / rate)), 3)

    def stats(self) -> dict:
        return {
            "mode": self.batching.name,
            "apply_mode": self.apply_mode,
            "model_threads": self.model_threads,
            "torch_threads": torch.get_num_threads(),
            "model_thread_nice": self._applied_nice,
            "queued_rows": self._queued_rows,
            "incoming_rows": self._incoming_rows,
            "arriving_requests": self._arriving,
            **self._stats.snapshot(self.batching.swaps),
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

    def _collect(self, first: QueuedRequest) -> tuple[list[QueuedRequest], bool]:
        """Requests for one flush: until rows or tokens are full or the oldest has waited enough."""
        flush = [first]
        if self.batching.single_request_flushes:
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

    def _take(self, flush: list[QueuedRequest]) -> None:
        taken = sum(len(request.rows) for request in flush)
        with self._lock:
            self._queued_rows -= taken
        QUEUE_ROWS.dec(taken)

    def _process(self, flush: list[QueuedRequest]) -> None:
        started = time.perf_counter()
        live = self._drop_gone(flush)
        if not live:
            return
        now = time.monotonic()
        self._stats.waited(sum(now - request.enqueued for request in live))
        items = self._encode(live)
        results: dict[QueuedRequest, list[list[float] | None]] = {
            request: [None] * len(request.rows) for request in live
        }
        self.batching.forward(items, lambda rows, slot: self._forward_chunks(rows, slot, results))
        for request, answer in results.items():
            _deliver(request, result=answer)
        seconds = time.perf_counter() - started
        rows = sum(len(request.rows) for request in live)
        self._stats.served(len(live), rows, seconds, self.model_threads)

    def _drop_gone(self, flush: list[QueuedRequest]) -> list[QueuedRequest]:
        live = [request for request in flush if not request.gone()]
        dropped = len(flush) - len(live)
        if dropped:
            self._stats.dropped(dropped)
        return live

    def _encode(self, requests: list[QueuedRequest]) -> list[FlushItem]:
        """Tokenise the whole flush at once (one tokenizer call per distinct encoding),
        keeping each row's origin."""
        rows = [row for request in requests for row in request.rows]
        encoded = encode_rows(rows)
        items, cursor = [], 0
        for request in requests:
            for position, row in enumerate(request.rows):
                items.append(FlushItem(request, position, row.model, encoded[cursor]))
                cursor += 1
        return items

    def _forward_chunks(
        self,
        items: list[FlushItem],
        slot: AdapterSet | None,
        results: dict[QueuedRequest, list[list[float] | None]],
    ) -> None:
        for chunk in self._chunks(items):
            self._forward(chunk, results, slot)

    def _chunks(self, items: list[FlushItem]) -> list[list[FlushItem]]:
        """Sort by length and cut chunks within max rows and max padded tokens.

        Under the eager forward a chunk also closes when the next row is more than twice as
        long as its shortest row and the chunk is already reasonably full, so short rows are not
        padded to long ones. The scripted forward runs its Linear layers on real tokens only, so
        there padding costs little and fuller chunks win.
        """
        split_by_length = self.backbone.scripted is None
        ordered = sorted(items, key=lambda item: len(item.encoded.input_ids))
        chunks: list[list[FlushItem]] = []
        current: list[FlushItem] = []
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
        chunk: list[FlushItem],
        results: dict[QueuedRequest, list[list[float] | None]],
        slot: AdapterSet | None,
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
        self._stats.forwarded(elapsed, [len(item.encoded.input_ids) for item in chunk])
        for item, probs in zip(chunk, probabilities, strict=True):
            results[item.request][item.position] = probs


def _deliver(
    request: QueuedRequest,
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
