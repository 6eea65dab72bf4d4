"""`POST /predict/{task_id}` (the version the task serves, or `?version=N`) and `POST /predict`
with several tasks: classify texts.

The routes check readiness and the tenant's rate limit, hand the request to the `Predictor`
(service/serving/predictor.py: registry, validation, adapter cache, batcher) and shape its
answer; each `ServingError` becomes the HTTP error the client is told. Every prediction carries
an `id` for `POST /tasks/{id}/feedback` (service/serving/prediction_ids.py).
"""

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from list_core.field_error import FieldError
from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.lifecycle_schemas import MultiPredictRequest, MultiPredictResponse
from service.api.routes.common import TaskId, errors
from service.api.schemas import PredictRequest, PredictResponse
from service.api.state import Services
from service.metrics import RATE_LIMITED
from service.registry.states import TASK_TRAINING
from service.serving.errors import (
    AdapterLoadFailedError,
    BatcherStoppedError,
    QueueFullError,
    RequestTooLargeError,
    ServingError,
    TaskNotFoundError,
    TaskNotReadyError,
    VersionNotFoundError,
)
from service.serving.predictor import Served

router = APIRouter(tags=["predict"])
# nginx's status for a client that closed the connection first; only the access log sees it.
CLIENT_CLOSED_REQUEST = 499
# Retry-After of a 409 for a task whose training job has no estimate yet (queued, just started).
NOT_READY_RETRY_SECONDS = 5
PinnedVersion = Annotated[
    int | None,
    Query(ge=1, le=2**31 - 1, description="Serve this version instead of the task's own."),
]


@router.post(
    "/predict/{task_id}",
    response_model=PredictResponse,
    summary="Classify texts with the version the task serves (or ?version=N)",
    responses=errors(401, 404, 409, 413, 422, 429, 503),
)
async def predict(
    task_id: TaskId,
    body: PredictRequest,
    tenant_id: TenantId,
    services: ServicesDep,
    request: Request,
    version: PinnedVersion = None,
) -> dict | Response:
    services.require_ready()
    rate_limit(services, tenant_id)
    try:
        # The body is read by now, so `receive` returns only when the client goes away.
        served = await services.predictor.predict(
            tenant_id, task_id, body.inputs, request.receive, version
        )
    except ServingError as error:
        raise api_error(error) from error
    if served is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody is left to read it
    return _response(served)


@router.post(
    "/predict",
    response_model=MultiPredictResponse,
    summary="Classify texts with several tasks at once, all rows in one mixed batch",
    description="Each input under each task: len(inputs) x len(tasks) rows, at most "
    "LISTSERVE_MAX_PREDICT_INPUTS rows per request. Counts as one predict request per task "
    "against the rate limit (at most a full bucket). One unknown task is a 404 for all.",
    responses=errors(401, 404, 409, 413, 422, 429, 503),
)
async def predict_many(
    body: MultiPredictRequest, tenant_id: TenantId, services: ServicesDep, request: Request
) -> dict | Response:
    services.require_ready()
    if not body.tasks:
        raise FieldError("tasks", "give at least one task id")
    repeated = sorted({task for task in body.tasks if body.tasks.count(task) > 1})
    if repeated:
        raise FieldError("tasks", f"task ids must be distinct; repeated: {repeated}")
    rate_limit(services, tenant_id, len(body.tasks))
    wanted = [(task_id, None) for task_id in body.tasks]
    try:
        served = await services.predictor.predict_many(
            tenant_id, wanted, body.inputs, request.receive
        )
    except ServingError as error:
        raise api_error(error) from error
    if served is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return {"results": [_response(one) for one in served]}


def _response(served: Served) -> dict:
    return {
        "task": served.task_id,
        "adapter_version": served.version,
        "predictions": [
            _prediction(served.labels, probs, prediction_id)
            for probs, prediction_id in zip(served.probabilities, served.ids, strict=True)
        ],
    }


def rate_limit(services: Services, tenant_id: str, requests: int = 1) -> None:
    """429 with Retry-After when the tenant is over its predict rate."""
    wait = services.predict_limiter.acquire(tenant_id, requests)
    if wait > 0:
        RATE_LIMITED.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"predict rate limit of {services.settings.predict_rate_per_second:g}/s exceeded",
            {"retry_after_seconds": round(wait, 3)},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )


def api_error(error: ServingError) -> ApiError:
    """The answer the client gets for each reason a prediction was not served."""
    match error:
        case TaskNotFoundError():
            return not_found()
        case VersionNotFoundError():
            return not_found("version")
        case TaskNotReadyError(status=status, eta_seconds=eta):
            return ApiError(
                409,
                "not_ready",
                str(error),
                {"status": status, "eta_seconds": eta},
                _not_ready_retry(status, eta),
            )
        case AdapterLoadFailedError(version=version):
            return ApiError(
                503,
                "adapter_unavailable",
                "the task's adapter could not be loaded; see the log",
                {"version": version},
            )
        case QueueFullError():
            return ApiError(
                429,
                "overloaded",
                "the prediction queue is full; retry shortly",
                {"queued_rows": error.queued_rows, "max_queue_rows": error.max_queue_rows},
                {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))},
            )
        case RequestTooLargeError():
            return ApiError(413, "payload_too_large", str(error))
        case BatcherStoppedError():
            return ApiError(503, "unavailable", "the service is shutting down")
    raise TypeError(f"no HTTP answer for {type(error).__name__}") from error


def _not_ready_retry(status: str, eta: float | None) -> dict[str, str]:
    """While the task trains, retry when its job expects to be done (soon, before the first
    estimate); a failed or cancelled task will not become ready by waiting."""
    if status != TASK_TRAINING:
        return {}
    wait = NOT_READY_RETRY_SECONDS if eta is None else eta
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def _prediction(labels: list[str], probabilities: list[float], prediction_id: str) -> dict:
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "id": prediction_id,
        "label": labels[best],
        "score": probabilities[best],
        "scores": dict(zip(labels, probabilities, strict=True)),
    }
