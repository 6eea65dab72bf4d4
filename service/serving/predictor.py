"""One prediction request, end to end: the one object the predict route calls.

It resolves the task's newest version in the registry (on every request, so a version a worker
registers is served at once), validates the inputs, leases the adapter from the LRU cache
(loaded from the store, sha256-checked, on a miss) and joins the dynamic batcher, so requests
for many tasks share one backbone forward. From its start until it submits, the request is
announced to the batcher (`arriving`), and its rows while their adapter loads (`incoming`), so
a flush can wait for them. A client that disconnects while its rows wait is cancelled out of
the batcher, so no forward runs for it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from list_core.artifact import AdapterMismatchError
from list_core.inference import Row
from service.registry.adapters import serving_target
from service.registry.db import Database
from service.serving.adapter_cache import AdapterCache, AdapterKey, AdapterLease, StaleAdapterError
from service.serving.batcher import DynamicBatcher
from service.serving.errors import (
    AdapterKeepsChangingError,
    AdapterLoadFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
)
from service.serving.inputs import PairText, validate_inputs
from service.serving.metrics import ADAPTER_LOAD_FAILURES, PREDICTIONS
from service.settings import Settings
from service.store import AdapterIntegrityError

log = logging.getLogger(__name__)
T = TypeVar("T")
# Runs a registry read off the event loop: `read(function, *args)` (Services.read_registry).
RegistryReader = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Target:
    """What serving a task needs from the registry: its newest version and how to answer."""

    key: AdapterKey
    labels: list[str]
    uses_text_b: bool
    head_kind: str
    method: str


@dataclass(frozen=True)
class Served:
    """The label probabilities per input, in order, and the version that computed them."""

    version: int
    labels: list[str]
    probabilities: list[list[float]]


class Predictor:
    """Serves predict requests on the process's one cache and batcher; the route's only call."""

    def __init__(
        self,
        database: Database,
        read_registry: RegistryReader,
        cache: AdapterCache,
        batcher: DynamicBatcher,
        settings: Settings,
    ) -> None:
        self.database = database
        self.read_registry = read_registry
        self.cache = cache
        self.batcher = batcher
        self.settings = settings

    async def predict(
        self,
        tenant_id: str,
        task_id: str,
        inputs: Sequence[str | PairText],
        disconnected: Callable[[], Awaitable[Any]],
    ) -> Served | None:
        """The task's answers for `inputs`, or None when `disconnected()` returned first (the
        client is gone). Raises a `ServingError` for anything the client is told."""
        with self.batcher.arriving():
            target = await self.read_registry(self._target, tenant_id, task_id)
            rows = validate_inputs(
                inputs,
                self.settings.max_predict_inputs,
                self.settings.max_text_chars,
                target.uses_text_b,
            )
            with self.batcher.incoming(len(rows)):
                target, lease = await self._lease(tenant_id, task_id, target)
        try:
            probabilities = await cancel_on_disconnect(
                self.batcher.submit([Row(lease.model, row.text, row.text_b) for row in rows]),
                disconnected,
            )
        finally:
            lease.release()
        if probabilities is None:
            return None
        PREDICTIONS.labels(target.head_kind, target.method).inc(len(rows))
        return Served(target.key.version, target.labels, probabilities)

    def _target(self, tenant_id: str, task_id: str) -> Target:
        """The task's newest version: a cheap Core query, no ORM objects."""
        row = self.database.read(serving_target, tenant_id, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.version is None:
            raise TaskNotReadyError(row.status)
        return Target(
            key=AdapterKey(tenant_id, task_id, row.version, row.path, row.sha256),
            labels=list(row.labels),
            uses_text_b="{text_b}" in row.template,
            head_kind=row.head_kind,
            method=row.method,
        )

    async def _lease(
        self, tenant_id: str, task_id: str, target: Target
    ) -> tuple[Target, AdapterLease]:
        """The cached model, held until released; a key the cache calls stale means a newer
        version just appeared."""
        for _ in range(2):
            try:
                return target, await self.cache.acquire(target.key)
            except StaleAdapterError:
                target = await self.read_registry(self._target, tenant_id, task_id)
            except (AdapterIntegrityError, AdapterMismatchError) as error:
                reason = "integrity" if isinstance(error, AdapterIntegrityError) else "mismatch"
                ADAPTER_LOAD_FAILURES.labels(reason).inc()
                log.error("adapter failed to load: %s", error, extra={"task_id": task_id})
                raise AdapterLoadFailedError(target.key.version) from error
        raise AdapterKeepsChangingError(f"task {task_id}'s adapter keeps changing")


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
