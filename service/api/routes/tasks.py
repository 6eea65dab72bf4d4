"""`/tasks`: create (validate, persist, enqueue), list, read and delete a tenant's tasks."""

import logging

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.routes.common import (
    Cursor,
    PageLimit,
    TaskId,
    errors,
    quota_error,
    submit_job,
)
from service.api.schemas import TaskCreate, TaskList, TaskOut
from service.api.validation import validate_task
from service.api.views import task_view
from service.registry import adapters as adapter_registry
from service.registry import tasks as task_registry
from service.registry.paging import UnknownCursor

log = logging.getLogger(__name__)
router = APIRouter(tags=["tasks"])


@router.post(
    "/tasks",
    status_code=202,
    response_model=TaskOut,
    summary="Create a task and start training its adapter",
    responses=errors(401, 413, 422, 429, 503),
)
def create_task(body: TaskCreate, tenant_id: TenantId, services: ServicesDep) -> dict:
    backbone = services.require_ready()
    settings = services.settings
    new = validate_task(body, tenant_id, settings, backbone)
    quotas = task_registry.Quotas(
        settings.max_tasks_per_tenant, settings.max_active_jobs_per_tenant
    )
    try:
        with services.database.session() as session:
            task, job = task_registry.create_task(session, new, quotas, settings.max_attempts)
    except task_registry.QuotaExceeded as error:
        raise quota_error(error) from error
    log.info("task created", extra={"task_id": task.id, "job_id": job.id})
    submit_job(services, task.id, job.id)
    return task_view(task, None, job)


@router.get(
    "/tasks",
    response_model=TaskList,
    summary="List your tasks, newest first",
    responses=errors(401, 422),
)
def list_tasks(
    tenant_id: TenantId, services: ServicesDep, limit: PageLimit = 50, after: Cursor = None
) -> dict:
    try:
        with services.database.read_session() as session:
            tasks, has_more = task_registry.list_tasks(session, tenant_id, limit, after)
            ids = [task.id for task in tasks]
            adapters = adapter_registry.serving_adapters(session, tasks)
            jobs = task_registry.latest_jobs(session, ids)
    except UnknownCursor as error:
        raise ApiError(
            422,
            "validation_error",
            "after: unknown cursor",
            [{"field": "after", "message": "unknown cursor"}],
        ) from error
    data = [task_view(task, adapters.get(task.id), jobs.get(task.id)) for task in tasks]
    return {"data": data, "has_more": has_more}


@router.get(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="Read one task",
    responses=errors(401, 404, 422),
)
def get_task(task_id: TaskId, tenant_id: TenantId, services: ServicesDep) -> dict:
    with services.database.read_session() as session:
        task = task_registry.get_task(session, tenant_id, task_id)
        if task is None:
            raise not_found()
        adapter = adapter_registry.serving_adapter(session, task)
        job = task_registry.latest_jobs(session, [task.id]).get(task.id)
    return task_view(task, adapter, job)


@router.delete(
    "/tasks/{task_id}",
    status_code=204,
    summary="Delete a task, its data and adapters",
    responses=errors(401, 404, 422),
)
async def delete_task(task_id: TaskId, tenant_id: TenantId, services: ServicesDep) -> Response:
    def delete() -> bool:
        with services.database.session() as session:
            deleted = task_registry.delete_task(session, tenant_id, task_id)
        if deleted is not None:
            services.store.remove_task(tenant_id, task_id)
        return deleted is not None

    if not await run_in_threadpool(delete):
        raise not_found()
    if services.cache is not None:
        services.cache.evict_task(task_id)
    log.info("task deleted", extra={"task_id": task_id})
    return Response(status_code=204)
