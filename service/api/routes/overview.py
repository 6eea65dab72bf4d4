"""`/admin/tasks` and `/admin/serving`: what an operator looks at (the dashboard reads them):
every tenant's tasks, one task with its versions and jobs, serving health now and over time."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from list_core.field_error import FieldError
from service.api.dashboard_schemas import (
    AdminTaskDetail,
    AdminTaskList,
    ServingHistoryOut,
    ServingOverview,
)
from service.api.deps import AdminOnly, ServicesDep
from service.api.errors import not_found
from service.api.routes.common import ID_PATTERN, Cursor, PageLimit, TaskId, errors
from service.api.views import job_view, task_view, version_view
from service.registry import adapters as adapter_registry
from service.registry import jobs as job_registry
from service.registry import overview
from service.registry import tasks as task_registry
from service.registry.models import Task
from service.registry.paging import UnknownCursor
from service.serving.history import ServingHistory, task_prediction_counts

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[AdminOnly], responses=errors(401, 503)
)
TASK_JOBS = 10
# Unix seconds; a sample is kept at most a few days, so anything in range is a valid `since`.
Since = Annotated[
    float | None,
    Query(ge=0, le=1e11, description="Only samples taken after this Unix time."),
]


def _admin_task(task: Task, adapter, job, tenant_name: str | None) -> dict:
    return {
        **task_view(task, adapter, job),
        "tenant_id": task.tenant_id,
        "tenant_name": tenant_name,
    }


@router.get(
    "/tasks",
    response_model=AdminTaskList,
    summary="Every tenant's tasks (or one tenant's), newest first",
    responses=errors(422),
)
def list_tasks(
    services: ServicesDep,
    tenant: Annotated[str | None, Query(pattern=ID_PATTERN, description="A tenant id.")] = None,
    limit: PageLimit = 50,
    after: Cursor = None,
) -> dict:
    try:
        with services.database.read_session() as session:
            tasks, has_more = overview.list_all_tasks(session, limit, after, tenant)
            adapters = adapter_registry.serving_adapters(session, tasks)
            jobs = task_registry.latest_jobs(session, [task.id for task in tasks])
            names = overview.tenant_names(session, [task.tenant_id for task in tasks])
    except UnknownCursor as error:
        raise FieldError("after", "unknown cursor") from error
    data = [
        _admin_task(task, adapters.get(task.id), jobs.get(task.id), names.get(task.tenant_id))
        for task in tasks
    ]
    return {"data": data, "has_more": has_more}


@router.get(
    "/tasks/{task_id}",
    response_model=AdminTaskDetail,
    summary="One task of any tenant, with its versions and newest jobs",
    responses=errors(404, 422),
)
def get_task(task_id: TaskId, services: ServicesDep) -> dict:
    with services.database.read_session() as session:
        task = overview.get_live_task(session, task_id)
        if task is None:
            raise not_found()
        adapter = adapter_registry.serving_adapter(session, task)
        jobs, _ = job_registry.list_jobs(session, TASK_JOBS, task_id=task.id)
        versions = adapter_registry.list_versions(session, task.id)
        name = overview.tenant_names(session, [task.tenant_id]).get(task.tenant_id)
    serving = task.serving_version
    return {
        "task": _admin_task(task, adapter, jobs[0] if jobs else None, name),
        "versions": {
            "serving_version": serving,
            "data": [version_view(version, serving) for version in versions],
        },
        "jobs": [job_view(job) for job in jobs],
    }


@router.get(
    "/serving",
    response_model=ServingOverview,
    summary="Serving health now: jobs queued and running, workers, per-task counts, cache",
)
def serving(services: ServicesDep) -> dict:
    counts = sorted(task_prediction_counts().items(), key=lambda item: (-item[1], item[0]))
    with services.database.read_session() as session:
        jobs = overview.active_job_counts(session)
        workers = overview.workers(session)
        names = overview.task_names(session, [task_id for task_id, _ in counts])
    tasks = [
        {
            "task_id": task_id,
            "name": names.get(task_id, (None, None))[0],
            "tenant_id": names.get(task_id, (None, None))[1],
            "predictions": int(count),
        }
        for task_id, count in counts
    ]
    return {
        "ready": services.ready,
        "status": services.status,
        "runner": services.runner.describe() if services.runner is not None else None,
        "jobs": jobs,
        "workers": [asdict(worker) for worker in workers],
        "tasks": tasks,
        "batcher": services.batcher.stats() if services.batcher is not None else None,
        "adapter_cache": services.cache.stats() if services.cache is not None else None,
    }


@router.get(
    "/serving/history",
    response_model=ServingHistoryOut,
    summary="Serving health over time: a bounded ring of samples, oldest first",
    description="Sampled every LISTSERVE_SERVING_HISTORY_SECONDS from the batcher's and the "
    "adapter cache's totals; the last LISTSERVE_SERVING_HISTORY_SAMPLES samples are kept. "
    "Poll with `since` = the last sample's `at` to get only new ones.",
    responses=errors(422),
)
def serving_history(request: Request, since: Since = None) -> dict:
    history: ServingHistory = request.app.state.serving_history
    return {
        "interval_seconds": history.interval_seconds,
        "capacity": history.capacity,
        "samples": history.samples(since),
    }
