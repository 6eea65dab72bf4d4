"""Shared route pieces: documented error responses, id and paging parameters, and handing a
new job to the runner."""

from typing import Annotated

from fastapi import Path, Query

from service.api.errors import ApiError
from service.api.schemas import ErrorResponse
from service.api.state import Services
from service.jobs.runner import RunnerUnavailable
from service.metrics import JOBS_SUBMITTED
from service.registry.tasks import QuotaExceeded

# Every id the service issues fits this (`tsk_` + hex); anything else, a NUL or a slash say,
# is refused before it reaches a query (PostgreSQL cannot even compare text holding a NUL).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TaskId = Annotated[str, Path(pattern=ID_PATTERN, description="A task id.")]
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="A job id.")]
PageLimit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
# Event ids are 32-bit integers on PostgreSQL: a larger cursor cannot exist, and comparing with
# one fails in the database instead of answering 422.
MAX_EVENT_ID = 2**31 - 1
EventCursor = Annotated[
    int | None, Query(ge=0, le=MAX_EVENT_ID, description="Last event id already seen.")
]
EventLimit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
ACTIVE_JOBS_RETRY_AFTER_SECONDS = 30
Cursor = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="`id` of the last item of the previous page."),
]


def errors(*codes: int) -> dict:
    """OpenAPI entries for error statuses, all in the one error format."""
    text = {
        401: "Missing or invalid key",
        404: "Not found (or owned by another tenant)",
        409: "Conflict with the resource's state",
        413: "Request body too large",
        422: "Invalid input; the message names the field",
        429: "Rate limited, over quota or overloaded; see Retry-After",
        503: "Not ready, a dependency is unavailable, or (admin) no admin token is set",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


def quota_error(error: QuotaExceeded) -> ApiError:
    """429 for a tenant over a quota; waiting helps only for active jobs."""
    headers = (
        {"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_SECONDS)}
        if error.kind == "active_jobs"
        else None
    )
    return ApiError(
        429, "quota_exceeded", error.message, {"quota": error.kind, "limit": error.limit}, headers
    )


def submit_job(services: Services, task_id: str, job_id: str) -> None:
    """Hand a committed job to the runner; 503 if it cannot take it now (the job stays queued
    and the sweep hands it over once the runner is back)."""
    JOBS_SUBMITTED.inc()
    try:
        services.runner.submit(job_id)
    except RunnerUnavailable as error:
        raise ApiError(
            503,
            "runner_unavailable",
            f"the task is saved but training could not be started ({error}); its job stays "
            "queued and starts when the runner is back",
            {"task_id": task_id, "job_id": job_id},
        ) from error
