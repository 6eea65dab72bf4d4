"""`/admin`: tenants and every tenant's jobs, behind the admin token."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from list_core.field_error import FieldError
from service.api.deps import AdminOnly, ServicesDep
from service.api.errors import ApiError, not_found
from service.api.routes.common import (
    ID_PATTERN,
    Cursor,
    EventCursor,
    EventLimit,
    JobId,
    PageLimit,
    errors,
)
from service.api.schemas import Job, JobEventList, JobList, TenantCreate, TenantCreated
from service.api.views import event_view, job_view
from service.registry import jobs as job_registry
from service.registry.paging import UnknownCursor
from service.registry.tenants import create_tenant as registry_create_tenant

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[AdminOnly], responses=errors(401, 503)
)
JobStatus = Literal["queued", "running", "cancel_requested", "succeeded", "failed", "cancelled"]


@router.post(
    "/tenants",
    status_code=201,
    response_model=TenantCreated,
    summary="Create a tenant; its API key is shown once",
    responses=errors(413, 422),
)
def create_tenant(body: TenantCreate, services: ServicesDep) -> dict:
    name = body.name.strip()
    if not name:
        raise FieldError("name", "must not be empty")
    if len(name) > services.settings.max_name_chars:
        raise FieldError("name", f"at most {services.settings.max_name_chars} characters")
    with services.database.session() as session:
        tenant, secret = registry_create_tenant(session, name)
    return {"id": tenant.id, "name": tenant.name, "api_key": secret}


@router.get(
    "/jobs", response_model=JobList, summary="All jobs, newest first", responses=errors(422)
)
def list_jobs(
    services: ServicesDep,
    status: JobStatus | None = None,
    tenant: Annotated[str | None, Query(pattern=ID_PATTERN, description="A tenant id.")] = None,
    limit: PageLimit = 50,
    after: Cursor = None,
) -> dict:
    try:
        with services.database.read_session() as session:
            jobs, has_more = job_registry.list_jobs(session, limit, after, status, tenant)
    except UnknownCursor as error:
        raise FieldError("after", "unknown cursor") from error
    return {"data": [job_view(job) for job in jobs], "has_more": has_more}


@router.get(
    "/jobs/{job_id}",
    response_model=Job,
    summary="One job with its progress",
    responses=errors(404, 422),
)
def get_job(job_id: JobId, services: ServicesDep) -> dict:
    with services.database.read_session() as session:
        job = job_registry.get_job(session, job_id)
    if job is None:
        raise not_found("job")
    return job_view(job)


@router.get(
    "/jobs/{job_id}/events",
    response_model=JobEventList,
    summary="A job's progress and lifecycle events, oldest first",
    responses=errors(404, 422),
)
def job_events(
    job_id: JobId,
    services: ServicesDep,
    after: EventCursor = None,
    limit: EventLimit = 200,
) -> dict:
    with services.database.read_session() as session:
        if job_registry.get_job(session, job_id) is None:
            raise not_found("job")
        events, has_more = job_registry.list_events(session, job_id, after, limit)
    return {"data": [event_view(event) for event in events], "has_more": has_more}


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=Job,
    summary="Cancel a job (queued: at once; running: at its next step)",
    responses=errors(404, 409, 422),
)
def cancel_job(job_id: JobId, services: ServicesDep) -> dict:
    try:
        with services.database.session() as session:
            job = job_registry.request_cancel(session, job_id)
    except job_registry.JobAlreadyFinished as error:
        raise ApiError(409, "conflict", str(error)) from error
    if job is None:
        raise not_found("job")
    return job_view(job)
