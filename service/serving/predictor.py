"""One prediction request, end to end: the one object the predict route calls.

It resolves the version to serve in the registry on every request (the one the task serves, or
the one the request pins), so a version a worker registers or a tenant promotes is served at
once by every replica; it validates the inputs, leases the adapter from the LRU cache
(loaded from the store, sha256-checked, on a miss) and joins the dynamic batcher, so requests
for many tasks share one backbone forward (a request for several tasks submits all its rows
at once). From its start until it submits, the request is
announced to the batcher (`arriving`), and its rows while their adapter loads (`incoming`), so
a flush can wait for them. A client that disconnects while its rows wait is cancelled out of
the batcher, so no forward runs for it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from list_core.artifact import AdapterMismatchError
from list_core.field_error import FieldError
from list_core.inference import Row
from service.jobs.timing import eta_seconds
from service.registry.adapters import serving_target
from service.registry.db import Database
from service.registry.tasks import latest_jobs
from service.serving import prediction_ids
from service.serving.adapter_cache import AdapterCache, AdapterKey, AdapterLease
from service.serving.batcher import DynamicBatcher
from service.serving.errors import (
    AdapterLoadFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    VersionNotFoundError,
)
from service.serving.inputs import PairText, PredictRow, validate_inputs
from service.serving.metrics import (
    ADAPTER_LOAD_FAILURES,
    PREDICTIONS,
    count_task_predictions,
)
from service.settings import Settings
from service.store import AdapterIntegrityError

log = logging.getLogger(__name__)
T = TypeVar("T")
# Runs a registry read off the event loop: `read(function, *args)` (Services.read_registry).
RegistryReader = Callable[..., Awaitable[Any]]
# A task to predict with, and the version to pin (None: the version the task serves).
Wanted = tuple[str, int | None]


@dataclass(frozen=True)
class Target:
    """What serving a task needs from the registry: the version to serve and how to answer."""

    key: AdapterKey
    labels: list[str]
    uses_text_b: bool
    head_kind: str
    method: str
    prediction_key: str


@dataclass(frozen=True)
class Served:
    """One task's label probabilities per input, in order, the version that computed them and
    each input's prediction id (`prediction_ids.py`)."""

    task_id: str
    version: int
    labels: list[str]
    probabilities: list[list[float]]
    ids: list[str]


class Predictor:
    """Serves predict requests on the process's one cache and batcher; the routes' only call."""

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
        version: int | None = None,
    ) -> Served | None:
        """The task's answers for `inputs` (from `version` when given), or None when
        `disconnected()` returned first (the client is gone). Raises a `ServingError` for
        anything the client is told."""
        served = await self.predict_many(tenant_id, [(task_id, version)], inputs, disconnected)
        return None if served is None else served[0]

    async def predict_many(
        self,
        tenant_id: str,
        wanted: Sequence[Wanted],
        inputs: Sequence[str | PairText],
        disconnected: Callable[[], Awaitable[Any]],
    ) -> list[Served] | None:
        """Every input under every task, all rows in one submit to the batcher (so in the same
        mixed forwards). Each (input, task) pair is one row; a request holds at most
        `max_predict_inputs` rows."""
        limit = self.settings.max_predict_inputs
        if len(wanted) > 1 and inputs and len(inputs) * len(wanted) > limit:
            raise FieldError(
                "inputs",
                f"{len(inputs)} inputs x {len(wanted)} tasks = {len(inputs) * len(wanted)} "
                f"rows; at most {limit} rows per request (LISTSERVE_MAX_PREDICT_INPUTS)",
            )
        with self.batcher.arriving():
            targets = await self.read_registry(self._targets, tenant_id, wanted)
            rows = [self._rows(inputs, target) for target in targets]
            with self.batcher.incoming(sum(map(len, rows))):
                leases = await self._lease_all(targets)
        try:
            batch = [
                Row(lease.model, row.text, row.text_b)
                for lease, task_rows in zip(leases, rows, strict=True)
                for row in task_rows
            ]
            probabilities = await cancel_on_disconnect(self.batcher.submit(batch), disconnected)
        finally:
            for lease in leases:
                lease.release()
        if probabilities is None:
            return None
        served, start = [], 0
        for target, task_rows in zip(targets, rows, strict=True):
            mine = probabilities[start : start + len(task_rows)]
            start += len(task_rows)
            PREDICTIONS.labels(target.head_kind, target.method).inc(len(task_rows))
            count_task_predictions(target.key.task_id, len(task_rows))
            served.append(_served(target, task_rows, mine))
        return served

    async def target(self, tenant_id: str, task_id: str) -> Target:
        """The version the task serves now, as `score` takes it."""
        return await self.read_registry(self._target, tenant_id, task_id, None)

    async def score(self, target: Target, rows: list[PredictRow]) -> list[list[float]]:
        """Probabilities for many texts (suggestions): one submit per `max_batch_rows`, so
        other tenants' requests keep their turn between them."""
        lease = await self._lease(target)
        chunk = max(1, self.settings.expert.max_batch_rows)
        probabilities: list[list[float]] = []
        try:
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                batch = [Row(lease.model, row.text, row.text_b) for row in part]
                probabilities += await self.batcher.submit(batch)
        finally:
            lease.release()
        return probabilities

    def _rows(self, inputs: Sequence[str | PairText], target: Target) -> list[PredictRow]:
        settings = self.settings
        return validate_inputs(
            inputs, settings.max_predict_inputs, settings.max_text_chars, target.uses_text_b
        )

    def _targets(self, tenant_id: str, wanted: Sequence[Wanted]) -> list[Target]:
        """Each task's version to serve: a cheap Core query per task, no ORM objects."""
        return [self._target(tenant_id, task_id, version) for task_id, version in wanted]

    def _target(self, tenant_id: str, task_id: str, version: int | None) -> Target:
        row = self.database.read(serving_target, tenant_id, task_id, version)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.version is None:
            if version is not None:
                raise VersionNotFoundError(task_id, version)
            raise TaskNotReadyError(row.status, self._training_eta(task_id))
        return Target(
            key=AdapterKey(tenant_id, task_id, row.version, row.path, row.sha256),
            labels=list(row.labels),
            uses_text_b="{text_b}" in row.template,
            head_kind=row.head_kind,
            method=row.method,
            prediction_key=row.prediction_key,
        )

    def _training_eta(self, task_id: str) -> float | None:
        """What the task's newest job estimates it has left: the 409's `Retry-After`."""
        with self.database.read_session() as session:
            job = latest_jobs(session, [task_id]).get(task_id)
        return None if job is None else eta_seconds(job.status, job.progress)

    async def _lease_all(self, targets: Sequence[Target]) -> list[AdapterLease]:
        """Each target's cached model, held until released (all released if one fails)."""
        leases: list[AdapterLease] = []
        try:
            for target in targets:
                leases.append(await self._lease(target))
        except BaseException:
            for lease in leases:
                lease.release()
            raise
        return leases

    async def _lease(self, target: Target) -> AdapterLease:
        try:
            return await self.cache.acquire(target.key)
        except (AdapterIntegrityError, AdapterMismatchError) as error:
            reason = "integrity" if isinstance(error, AdapterIntegrityError) else "mismatch"
            ADAPTER_LOAD_FAILURES.labels(reason).inc()
            log.error("adapter failed to load: %s", error, extra={"task_id": target.key.task_id})
            raise AdapterLoadFailedError(target.key.version) from error


def _served(target: Target, rows: list[PredictRow], probabilities: list[list[float]]) -> Served:
    now = time.time()
    ids = [
        prediction_ids.issue(
            target.prediction_key,
            target.key.task_id,
            target.key.version,
            max(range(len(probs)), key=probs.__getitem__),
            row.text,
            row.text_b,
            now,
        )
        for row, probs in zip(rows, probabilities, strict=True)
    ]
    return Served(target.key.task_id, target.key.version, target.labels, probabilities, ids)


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
