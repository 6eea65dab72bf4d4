"""Tenants and their API keys."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth import new_api_key
from service.registry.ids import new_id
from service.registry.models import ApiKey, Tenant


def create_tenant(session: Session, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first key; the key's secret is returned here and never again."""
    tenant = Tenant(id=new_id("tnt"), name=name)
    key = new_api_key()
    session.add(tenant)
    session.flush()
    session.add(ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=key.hash, prefix=key.prefix))
    session.flush()
    return tenant, key.secret


def tenant_id_for_key_hash(session: Session, key_hash: str) -> str | None:
    """The tenant owning a (non-revoked) key, looked up by the key's sha256."""
    return session.scalar(
        select(ApiKey.tenant_id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
