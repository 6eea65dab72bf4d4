"""Bodies of the operators' tenant routes (`/admin/tenants`): tenants and their keys."""

from datetime import datetime

from pydantic import BaseModel, Field

from service.api.schemas import _examples

_TS = "2025-01-01T12:00:00Z"
_KEY = {"id": "key_3d9e...", "prefix": "lsk_Q2xhc", "created_at": _TS, "revoked_at": None}


class KeyOut(BaseModel):
    model_config = _examples(_KEY)
    id: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    model_config = _examples({**_KEY, "api_key": "lsk_Q2xh...shown-once"})
    api_key: str = Field(description="Shown once; only its sha256 is stored.")


class TenantOut(BaseModel):
    model_config = _examples(
        {"id": "tnt_5f0c...", "name": "acme", "created_at": _TS, "keys": [_KEY]}
    )
    id: str
    name: str
    created_at: datetime
    keys: list[KeyOut] = Field(description="Every key, revoked ones included, oldest first.")


class TenantList(BaseModel):
    model_config = _examples({"data": [], "has_more": False})
    data: list[TenantOut]
    has_more: bool
