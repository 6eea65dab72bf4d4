"""`POST /predict/{task_id}`: classify texts with the task's newest adapter.

The route checks readiness and the tenant's rate limit, hands the request to the `Predictor`
(service/serving/predictor.py: registry, validation, adapter cache, batcher) and shapes its
answer; each `ServingError` becomes the HTTP error the client is told.
"""

import math

from fastapi import APIRouter, Request, Response

from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.routes.common import TaskId, errors
from service.api.schemas import PredictRequest, PredictResponse
from service.api.state import Services
from service.metrics import RATE_LIMITED
from service.serving.errors import (
    AdapterKeepsChangingError,
    AdapterLoadFailedError,
    BatcherStoppedError,
    QueueFullError,
    RequestTooLargeError,
    ServingError,
    TaskNotFoundError,
    TaskNotReadyError,
)

router = APIRouter(tags=["predict"])
# nginx's status for a client that closed the connection first; only the access log sees it.
CLIENT_CLOSED_REQUEST = 499


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
    try:
        # The body is read by now, so `receive` returns only when the client goes away.
        served = await services.predictor.predict(tenant_id, task_id, body.inputs, request.receive)
    except ServingError as error:
        raise _api_error(error) from error
    if served is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody is left to read it
    return {
        "task": task_id,
        "adapter_version": served.version,
        "predictions": [_prediction(served.labels, probs) for probs in served.probabilities],
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


def _api_error(error: ServingError) -> ApiError:
    """The answer the client gets for each reason a prediction was not served."""
    match error:
        case TaskNotFoundError():
            return not_found()
        case TaskNotReadyError(status=status):
            return ApiError(409, "not_ready", str(error), {"status": status})
        case AdapterLoadFailedError(version=version):
            return ApiError(
                503,
                "adapter_unavailable",
                "the task's adapter could not be loaded; see the log",
                {"version": version},
            )
        case AdapterKeepsChangingError():
            return ApiError(503, "adapter_unavailable", "the task's adapter keeps changing; retry")
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


def _prediction(labels: list[str], probabilities: list[float]) -> dict:
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": labels[best],
        "score": probabilities[best],
        "scores": dict(zip(labels, probabilities, strict=True)),
    }
