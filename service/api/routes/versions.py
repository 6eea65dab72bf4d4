"""A task's adapter versions: list them, and choose which one `/predict` serves.

The choice is the task's `serving_version` in the registry, which every predict request reads,
so every API replica serves the promoted version from its next request, with no restart and
no notice. A request can still pin any version with `POST /predict/{task}?version=N`.
"""

from typing import Annotated

from fastapi import APIRouter, Path

from service.api.deps import ServicesDep, TenantId
from service.api.errors import not_found
from service.api.lifecycle_schemas import VersionList, VersionOut
from service.api.routes.common import TaskId, errors
from service.api.views import version_view
from service.registry import adapters as adapter_registry
from service.registry import tasks as task_registry

router = APIRouter(tags=["versions"])
# Versions are 32-bit integers on PostgreSQL; a larger one cannot exist.
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="A version number.")]


@router.get(
    "/tasks/{task_id}/versions",
    response_model=VersionList,
    summary="A task's versions, newest first, each with its metrics",
    responses=errors(401, 404, 422),
)
def list_versions(task_id: TaskId, tenant_id: TenantId, services: ServicesDep) -> dict:
    with services.database.read_session() as session:
        task = task_registry.get_task(session, tenant_id, task_id)
        if task is None:
            raise not_found()
        versions = adapter_registry.list_versions(session, task.id)
    serving = task.serving_version
    return {
        "serving_version": serving,
        "data": [version_view(version, serving) for version in versions],
    }


@router.post(
    "/tasks/{task_id}/versions/{version}/promote",
    response_model=VersionOut,
    summary="Serve this version of the task from the next request on (roll back or forward)",
    responses=errors(401, 404, 422),
)
def promote(
    task_id: TaskId, version: VersionNumber, tenant_id: TenantId, services: ServicesDep
) -> dict:
    with services.database.session() as session:
        task = task_registry.lock_task(session, tenant_id, task_id)
        if task is None:
            raise not_found()
        promoted = adapter_registry.promote_version(session, task, version)
        if promoted is None:
            raise not_found("version")
    return version_view(promoted, version)
