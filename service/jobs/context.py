"""Everything `execute_job` needs, bundled so each runner builds it once per process.

The timings have no defaults here: they are settings (`Settings.expert`), and
`JobContext.from_settings` is how a runner gets them."""

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from list_core.backbone import Backbone
from service.registry.db import Database
from service.settings import Settings
from service.store import AdapterStore

RegisteredHook = Callable[[str, str, int], None]


def new_owner_id() -> str:
    """Lease owner: which host and process, plus a nonce so a restarted pid is a new owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class JobContext:
    database: Database
    store: AdapterStore
    backbone: Callable[[], Backbone]
    lease_seconds: float
    heartbeat_seconds: float
    progress_interval_seconds: float
    owner: str = field(default_factory=new_owner_id)
    on_registered: RegisteredHook | None = None
    shutdown: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: Database,
        backbone: Callable[[], Backbone],
        on_registered: RegisteredHook | None = None,
    ) -> "JobContext":
        timings = settings.expert
        return cls(
            database=database,
            store=AdapterStore(settings.store),
            backbone=backbone,
            lease_seconds=timings.lease_seconds,
            heartbeat_seconds=timings.heartbeat_seconds,
            progress_interval_seconds=timings.progress_interval_seconds,
            on_registered=on_registered,
        )
