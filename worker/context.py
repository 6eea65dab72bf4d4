"""The job context of one worker process, built when its first job arrives.

Built lazily in the process that runs tasks: with the prefork pool that is the forked child, so
the parent never loads the backbone or opens database connections a child would inherit. The
backbone loads on the first job, not at process init, because Celery kills a pool child that
takes more than a few seconds to start, and a real backbone (let alone on a GPU) takes longer.
"""

import logging
import os
import threading

from list_core.backbone import Backbone
from list_core.backbone_choice import choose_backbone, load_chosen
from service.jobs.context import JobContext
from service.registry.db import Database
from worker.settings import CelerySettings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_context: JobContext | None = None


class BackboneLoader:
    """Loads the backbone once, on first call, the same way the API chooses it."""

    def __init__(self, settings: CelerySettings) -> None:
        self.settings = settings
        self._backbone: Backbone | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Backbone:
        with self._lock:
            if self._backbone is None:
                choice = choose_backbone(self.settings.backbone)
                self._backbone, choice = load_chosen(choice, self.settings.device)
                log.info(
                    "backbone loaded",
                    extra={
                        "backbone": self._backbone.fingerprint,
                        "reason": choice.reason,
                        "pid": os.getpid(),
                    },
                )
            return self._backbone


def worker_context() -> JobContext:
    """This process's context (database migrated, backbone loaded on first use)."""
    global _context
    with _lock:
        if _context is None:
            settings = CelerySettings()
            database = Database(settings.database_url)
            database.migrate()
            _context = JobContext.from_settings(settings, database, BackboneLoader(settings))
        return _context


def existing_context() -> JobContext | None:
    """The context if this process has run a job; never builds one."""
    return _context
