"""Resolving a bearer key to its tenant, with a short positive cache (predict is hot).

A revoked key stops working in the process that revoked it at once (`forget`), and in every
other process when its cache entry expires: at most LISTSERVE_AUTH_CACHE_SECONDS later.
"""

import threading
import time

from service.auth import hash_key
from service.registry.db import Database
from service.registry.tenants import tenant_id_for_key_hash


class TenantResolver:
    def __init__(self, database: Database, ttl_seconds: float) -> None:
        self.database = database
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> str | None:
        """The tenant id if this key was resolved within the ttl; cheap enough for the event
        loop, so only a miss needs a thread."""
        return self._hit(hash_key(secret))

    def _hit(self, key_hash: str) -> str | None:
        with self._lock:
            hit = self._cache.get(key_hash)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def forget(self, key_hashes: list[str]) -> None:
        """Drop revoked keys now, so this process refuses them at once; other processes refuse
        them when their entries expire (at most `ttl_seconds` later)."""
        with self._lock:
            for key_hash in key_hashes:
                self._cache.pop(key_hash, None)

    def resolve(self, secret: str) -> str | None:
        """The tenant id for a key, or None. Only the key's hash is used or kept."""
        key_hash = hash_key(secret)
        hit = self._hit(key_hash)
        if hit is not None:
            return hit
        now = time.monotonic()
        with self.database.read_session() as session:
            tenant_id = tenant_id_for_key_hash(session, key_hash)
        if tenant_id is not None and self.ttl_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_hash] = (tenant_id, now + self.ttl_seconds)
        return tenant_id
