"""`/admin/tenants`: list tenants, add and revoke their keys, delete one with all it owns."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from list_core.field_error import FieldError
from service.api.admin_schemas import KeyCreated, TenantList
from service.api.deps import AdminOnly, ServicesDep
from service.api.errors import not_found
from service.api.routes.common import ID_PATTERN, Cursor, PageLimit, errors
from service.registry import tenants as tenant_registry
from service.registry.models import ApiKey, Tenant
from service.registry.paging import UnknownCursor

router = APIRouter(
    prefix="/admin/tenants",
    tags=["admin"],
    dependencies=[AdminOnly],
    responses=errors(401, 503),
)
TenantId = Annotated[str, Path(pattern=ID_PATTERN, description="A tenant id.")]
KeyId = Annotated[str, Path(pattern=ID_PATTERN, description="A key id.")]


@router.get("", response_model=TenantList, summary="Tenants, newest first", responses=errors(422))
def list_tenants(services: ServicesDep, limit: PageLimit = 50, after: Cursor = None) -> dict:
    try:
        with services.database.read_session() as session:
            tenants, has_more = tenant_registry.list_tenants(session, limit, after)
            keys = tenant_registry.tenant_keys(session, [tenant.id for tenant in tenants])
            data = [_tenant_view(tenant, keys[tenant.id]) for tenant in tenants]
    except UnknownCursor as error:
        raise FieldError("after", "unknown cursor") from error
    return {"data": data, "has_more": has_more}


@router.post(
    "/{tenant_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Add a key (to rotate: add one, move clients to it, revoke the old one)",
    responses=errors(404, 422),
)
def add_key(tenant_id: TenantId, services: ServicesDep) -> dict:
    with services.database.session() as session:
        if tenant_registry.get_tenant(session, tenant_id) is None:
            raise not_found("tenant")
        key, secret = tenant_registry.add_key(session, tenant_id)
        return {**_key_view(key), "api_key": secret}


@router.delete(
    "/{tenant_id}/keys/{key_id}",
    status_code=204,
    summary="Revoke a key: refused at once by this process, by every other within "
    "LISTSERVE_AUTH_CACHE_SECONDS",
    responses=errors(404, 422),
)
def revoke_key(tenant_id: TenantId, key_id: KeyId, services: ServicesDep) -> Response:
    with services.database.session() as session:
        key = tenant_registry.revoke_key(session, tenant_id, key_id)
        if key is None:
            raise not_found("key")
        key_hash = key.key_hash
    services.tenants.forget([key_hash])
    return Response(status_code=204)


@router.delete(
    "/{tenant_id}",
    status_code=204,
    summary="Delete a tenant: its keys, tasks, texts and adapter files",
    responses=errors(404, 422),
)
async def delete_tenant(tenant_id: TenantId, services: ServicesDep) -> Response:
    def delete() -> tenant_registry.DeletedTenant | None:
        with services.database.session() as session:
            deleted = tenant_registry.delete_tenant(session, tenant_id)
        if deleted is not None:
            services.store.remove_tenant(tenant_id)
        return deleted

    deleted = await run_in_threadpool(delete)
    if deleted is None:
        raise not_found("tenant")
    services.tenants.forget(deleted.key_hashes)
    if services.cache is not None:
        for task_id in deleted.task_ids:
            services.cache.evict_task(task_id)
    return Response(status_code=204)


def _key_view(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _tenant_view(tenant: Tenant, keys: list[ApiKey]) -> dict:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "created_at": tenant.created_at,
        "keys": [_key_view(key) for key in keys],
    }
