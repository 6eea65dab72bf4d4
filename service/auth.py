"""Tenant API keys and the admin token: generation, hashing, constant-time comparison.

A key is shown once at creation; the registry keeps only its sha256. No FastAPI here: the CLI
creates tenants with the same functions the API uses.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "lsk_"


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: `secret` goes to the caller once, `hash` to the registry."""

    secret: str
    hash: str
    prefix: str


def new_api_key() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret=secret, hash=hash_key(secret), prefix=secret[:10])


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a token matched."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
