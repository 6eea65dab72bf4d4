"""Tenants and their API keys: create, list, add and revoke keys, delete a tenant."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth import new_api_key
from service.registry.ids import new_id
from service.registry.models import ApiKey, Task, Tenant, utcnow
from service.registry.paging import newest_first_page
from service.registry.tasks import delete_task


@dataclass(frozen=True)
class DeletedTenant:
    """What deleting a tenant removed: its tasks (whose files the caller removes after
    commit) and the hashes of the keys revoked (which the caller drops from its auth cache)."""

    task_ids: list[str]
    key_hashes: list[str]


def create_tenant(session: Session, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first key; the key's secret is returned here and never again."""
    tenant = Tenant(id=new_id("tnt"), name=name)
    session.add(tenant)
    session.flush()
    _, secret = add_key(session, tenant.id)
    return tenant, secret


def get_tenant(session: Session, tenant_id: str) -> Tenant | None:
    """A live (not deleted) tenant."""
    return session.scalar(select(Tenant).where(Tenant.id == tenant_id, Tenant.deleted_at.is_(None)))


def list_tenants(session: Session, limit: int, after: str | None) -> tuple[list[Tenant], bool]:
    query = select(Tenant).where(Tenant.deleted_at.is_(None))
    return newest_first_page(session, Tenant, query, limit, after)


def tenant_keys(session: Session, tenant_ids: list[str]) -> dict[str, list[ApiKey]]:
    """Every key of each tenant, revoked ones included, oldest first."""
    keys: dict[str, list[ApiKey]] = {tenant_id: [] for tenant_id in tenant_ids}
    if tenant_ids:
        rows = session.scalars(
            select(ApiKey)
            .where(ApiKey.tenant_id.in_(tenant_ids))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        for key in rows:
            keys[key.tenant_id].append(key)
    return keys


def add_key(session: Session, tenant_id: str) -> tuple[ApiKey, str]:
    """Another key for the tenant; the others keep working until revoked. The secret is
    returned here and never again."""
    new = new_api_key()
    key = ApiKey(id=new_id("key"), tenant_id=tenant_id, key_hash=new.hash, prefix=new.prefix)
    session.add(key)
    session.flush()
    return key, new.secret


def revoke_key(session: Session, tenant_id: str, key_id: str) -> ApiKey | None:
    """Mark the tenant's key revoked (idempotent); None if the tenant has no such key."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def delete_tenant(session: Session, tenant_id: str) -> DeletedTenant | None:
    """Revoke every key and delete every task (texts, versions; active jobs cancelled) of the
    tenant, and mark it deleted. The row stays for the jobs that name it."""
    tenant = get_tenant(session, tenant_id)
    if tenant is None:
        return None
    hashes = []
    for key in session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id)):
        hashes.append(key.key_hash)
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    task_ids = list(
        session.scalars(
            select(Task.id).where(Task.tenant_id == tenant_id, Task.deleted_at.is_(None))
        )
    )
    for task_id in task_ids:
        delete_task(session, tenant_id, task_id)
    tenant.deleted_at = utcnow()
    session.flush()
    return DeletedTenant(task_ids, hashes)


def tenant_id_for_key_hash(session: Session, key_hash: str) -> str | None:
    """The live tenant owning a (non-revoked) key, looked up by the key's sha256."""
    return session.scalar(
        select(ApiKey.tenant_id)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            Tenant.deleted_at.is_(None),
        )
    )
