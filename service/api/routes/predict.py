"""`POST /predict/{task_id}`: classify texts with the task's newest adapter.

The adapter comes from the LRU cache (loaded from the store, sha256-checked, on a miss) and the
rows join the dynamic batcher, so requests for many tasks share one backbone forward; while a
load runs, the batcher knows the rows are coming and can hold a flush for them. A client
that disconnects while its rows wait is cancelled out of the batcher, so no forward runs for it.
"""

import logging
import math
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from list_core.artifact import AdapterMismatchError
from list_core.inference import Row
from service.adapter_cache import AdapterKey, AdapterLease, StaleAdapterError
from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.routes.common import TaskId, errors
from service.api.schemas import PredictRequest, PredictResponse
from service.api.state import Services
from service.api.validation import validate_predict
from service.batcher import (
    BatcherStoppedError,
    QueueFullError,
    RequestTooLargeError,
    cancel_on_disconnect,
)
from service.metrics import ADAPTER_LOAD_FAILURES, PREDICTIONS, RATE_LIMITED
from service.registry.adapters import serving_target
from service.store import AdapterIntegrityError

log = logging.getLogger(__name__)
router = APIRouter(tags=["predict"])
# nginx's status for a client that closed the connection first; only the access log sees it.
CLIENT_CLOSED_REQUEST = 499


@dataclass(frozen=True)
class Target:
    key: AdapterKey
    labels: list[str]
    uses_text_b: bool
    head_kind: str
    method: str


@router.post(
    "/predict/{task_id}",
    response_model=PredictResponse,
    summary="Classify texts with the task's newest adapter",
    responses=errors(401, 404, 409, 413, 422, 429, 503),
)
async def predict(
    task_id: TaskId,
    body: PredictRequest,
    tenant_id: TenantId,
    services: ServicesDep,
    request: Request,
) -> dict | Response:
    services.require_ready()
    _rate_limit(services, tenant_id)
    with services.batcher.arriving():
        target = await services.read_registry(_target, services, tenant_id, task_id)
        rows = validate_predict(body, services.settings, target.uses_text_b)
        with services.batcher.incoming(len(rows)):
            target, lease = await _lease(services, tenant_id, task_id, target)
    try:
        # The body is read by now, so `receive` returns only when the client goes away.
        probabilities = await cancel_on_disconnect(
            services.batcher.submit([Row(lease.model, row.text, row.text_b) for row in rows]),
            request.receive,
        )
    except QueueFullError as error:
        raise ApiError(
            429,
            "overloaded",
            "the prediction queue is full; retry shortly",
            {"queued_rows": error.queued_rows, "max_queue_rows": error.max_queue_rows},
            {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))},
        ) from error
    except RequestTooLargeError as error:
        raise ApiError(413, "payload_too_large", str(error)) from error
    except BatcherStoppedError as error:
        raise ApiError(503, "unavailable", "the service is shutting down") from error
    finally:
        lease.release()
    if probabilities is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody is left to read it
    PREDICTIONS.labels(target.head_kind, target.method).inc(len(rows))
    return {
        "task": task_id,
        "adapter_version": target.key.version,
        "predictions": [_prediction(target.labels, probs) for probs in probabilities],
    }


def _rate_limit(services: Services, tenant_id: str) -> None:
    wait = services.predict_limiter.acquire(tenant_id)
    if wait > 0:
        RATE_LIMITED.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"predict rate limit of {services.settings.predict_rate_per_second:g}/s exceeded",
            {"retry_after_seconds": round(wait, 3)},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _target(services: Services, tenant_id: str, task_id: str) -> Target:
    """The task's newest version, read from the registry on every request, so a version a
    worker registers is served at once; a cheap Core query, no ORM objects."""
    row = services.database.read(serving_target, tenant_id, task_id)
    if row is None:
        raise not_found()
    if row.version is None:
        raise ApiError(
            409,
            "not_ready",
            f"task has no trained adapter yet (status {row.status})",
            {"status": row.status},
        )
    return Target(
        key=AdapterKey(tenant_id, task_id, row.version, row.path, row.sha256),
        labels=list(row.labels),
        uses_text_b="{text_b}" in row.template,
        head_kind=row.head_kind,
        method=row.method,
    )


async def _lease(
    services: Services, tenant_id: str, task_id: str, target: Target
) -> tuple[Target, AdapterLease]:
    """The cached model, held until released; a key the cache calls stale means a newer
    version just appeared."""
    for _ in range(2):
        try:
            return target, await services.cache.acquire(target.key)
        except StaleAdapterError:
            target = await services.read_registry(_target, services, tenant_id, task_id)
        except (AdapterIntegrityError, AdapterMismatchError) as error:
            reason = "integrity" if isinstance(error, AdapterIntegrityError) else "mismatch"
            ADAPTER_LOAD_FAILURES.labels(reason).inc()
            log.error("adapter failed to load: %s", error, extra={"task_id": task_id})
            raise ApiError(
                503,
                "adapter_unavailable",
                "the task's adapter could not be loaded; see the log",
                {"version": target.key.version},
            ) from error
    raise ApiError(503, "adapter_unavailable", "the task's adapter keeps changing; retry")


def _prediction(labels: list[str], probabilities: list[float]) -> dict:
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": labels[best],
        "score": probabilities[best],
        "scores": dict(zip(labels, probabilities, strict=True)),
    }
