"""A tenant's own training jobs: list a task's, read one, follow its events (JSON pages or a
live Server-Sent Events stream) and cancel it. Another tenant's job is a 404, like a missing
one; the admin routes see every tenant's."""

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from list_core.field_error import FieldError
from service.api import event_stream
from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.routes.common import (
    MAX_EVENT_ID,
    Cursor,
    EventCursor,
    EventLimit,
    JobId,
    PageLimit,
    TaskId,
    errors,
)
from service.api.schemas import Job, JobEventList, JobList
from service.api.views import event_view, job_view
from service.registry import jobs as job_registry
from service.registry import tasks as task_registry
from service.registry.paging import UnknownCursor

router = APIRouter(tags=["jobs"])
EVENT_STREAM = "text/event-stream"
STREAM_EXAMPLE = (
    "retry: 1000\n\n"
    'id: 41\nevent: progress\ndata: {"id": 41, "kind": "progress", "data": {"session": 1, '
    '"phase": "distill", "fraction": 0.4}, "created_at": "2025-01-01T12:00:00Z"}\n\n'
    'event: end\ndata: {"id": "job_77c2...", "status": "succeeded", ...}\n\n'
)
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=MAX_EVENT_ID,
        description="With the stream: resume after this event id (what EventSource sends).",
    ),
]


@router.get(
    "/tasks/{task_id}/jobs",
    response_model=JobList,
    summary="A task's training jobs, newest first",
    responses=errors(401, 404, 422),
)
def list_task_jobs(
    task_id: TaskId,
    tenant_id: TenantId,
    services: ServicesDep,
    limit: PageLimit = 50,
    after: Cursor = None,
) -> dict:
    with services.database.read_session() as session:
        if task_registry.get_task(session, tenant_id, task_id) is None:
            raise not_found()
        try:
            jobs, has_more = job_registry.list_jobs(session, limit, after, task_id=task_id)
        except UnknownCursor as error:
            raise FieldError("after", "unknown cursor") from error
    return {"data": [job_view(job) for job in jobs], "has_more": has_more}


@router.get(
    "/jobs/{job_id}",
    response_model=Job,
    summary="One of your jobs: status, progress, trained steps, error, metrics per session",
    responses=errors(401, 404, 422),
)
def get_job(job_id: JobId, tenant_id: TenantId, services: ServicesDep) -> dict:
    with services.database.read_session() as session:
        job = job_registry.get_tenant_job(session, tenant_id, job_id)
    if job is None:
        raise not_found("job")
    return job_view(job)


@router.get(
    "/jobs/{job_id}/events",
    response_model=JobEventList,
    summary="A job's events: a JSON page, or live with Accept: text/event-stream",
    description="With `Accept: text/event-stream`, Server-Sent Events: each event as it is "
    "written (`id`, `event` = its kind, `data` = the event), then `event: end` with the job "
    "once it has ended. Resume with `Last-Event-ID` (or `after`). A stream closes after "
    "LISTSERVE_EVENT_STREAM_MAX_SECONDS; reconnect with the last id to go on.",
    responses={
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": STREAM_EXAMPLE}}},
        **errors(401, 404, 422),
    },
)
async def job_events(
    job_id: JobId,
    tenant_id: TenantId,
    services: ServicesDep,
    request: Request,
    after: EventCursor = None,
    limit: EventLimit = 200,
    last_event_id: LastEventId = None,
):
    def read() -> tuple[bool, list, bool]:
        with services.database.read_session() as session:
            if job_registry.get_tenant_job(session, tenant_id, job_id) is None:
                return False, [], False
            if wants_stream:
                return True, [], False
            events, more = job_registry.list_events(session, job_id, cursor, limit)
            return True, [event_view(event) for event in events], more

    wants_stream = EVENT_STREAM in request.headers.get("accept", "")
    cursor = last_event_id if last_event_id is not None else after
    found, data, has_more = await run_in_threadpool(read)
    if not found:
        raise not_found("job")
    if not wants_stream:
        return {"data": data, "has_more": has_more}
    expert = services.settings.expert
    stream = event_stream.job_events(
        services.database,
        job_id,
        cursor or 0,
        expert.event_poll_seconds,
        expert.event_keepalive_seconds,
        expert.event_stream_max_seconds,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type=EVENT_STREAM, headers=headers)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=Job,
    summary="Cancel one of your jobs (queued: at once; running: at its next step)",
    responses=errors(401, 404, 409, 422),
)
def cancel_job(job_id: JobId, tenant_id: TenantId, services: ServicesDep) -> dict:
    try:
        with services.database.session() as session:
            if job_registry.get_tenant_job(session, tenant_id, job_id) is None:
                raise not_found("job")
            job = job_registry.request_cancel(session, job_id)
    except job_registry.JobAlreadyFinished as error:
        raise ApiError(409, "conflict", str(error)) from error
    return job_view(job)
