"""Finding jobs that need (re-)submitting, and the background sweep both runners share."""

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from service.jobs.runner import RunnerUnavailable
from service.registry.db import Database
from service.registry.jobs import queued_job_ids, sweep_stale_leases
from service.registry.models import utcnow

log = logging.getLogger(__name__)


def recoverable_jobs(database: Database, min_queued_seconds: float, limit: int = 100) -> list[str]:
    """Jobs to hand to a runner: those whose worker stopped heartbeating (now queued again)
    and queued ones not handed over in the last `min_queued_seconds` (never enqueued, or lost
    by a broker). Submitting a job twice is harmless: the second claim is dropped."""
    with database.session() as session:
        requeued = sweep_stale_leases(session)
    with database.read_session() as session:
        waiting = queued_job_ids(session, utcnow() - timedelta(seconds=min_queued_seconds), limit)
    return list(dict.fromkeys([*requeued, *waiting]))


class JobSweeper:
    """Re-submits recoverable jobs once at start and then every `interval_seconds`.

    A sweep never raises: the API must come up and stay up with the registry or the runner
    briefly unavailable, and the next sweep simply tries again.
    """

    def __init__(
        self,
        database: Database,
        submit: Callable[[str], None],
        interval_seconds: float,
        min_queued_seconds: float,
    ) -> None:
        self.database = database
        self.submit = submit
        self.interval_seconds = interval_seconds
        self.min_queued_seconds = min_queued_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.sweep()
        self._thread = threading.Thread(target=self._loop, name="job-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sweep(self) -> None:
        try:
            job_ids = recoverable_jobs(self.database, self.min_queued_seconds)
        except Exception:
            log.exception("job sweep failed")
            return
        for job_id in job_ids:
            try:
                self.submit(job_id)
            except RunnerUnavailable as error:
                log.warning("job sweep: %s", error, extra={"waiting_jobs": len(job_ids)})
                return
            log.info("job sent by the sweep", extra={"job_id": job_id})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.sweep()
