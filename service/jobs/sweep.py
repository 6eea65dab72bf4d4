"""Finding jobs that need (re-)submitting: stale leases and jobs no runner picked up."""

from datetime import timedelta

from service.registry.db import Database
from service.registry.jobs import queued_job_ids, sweep_stale_leases
from service.registry.models import utcnow


def recoverable_jobs(database: Database, min_queued_seconds: float, limit: int = 100) -> list[str]:
    """Jobs to hand to a runner: those whose worker stopped heartbeating (now queued again)
    and queued ones not handed over in the last `min_queued_seconds` (never enqueued, or lost
    by a broker). Submitting a job twice is harmless: the second claim is dropped."""
    with database.session() as session:
        requeued = sweep_stale_leases(session)
    with database.read_session() as session:
        waiting = queued_job_ids(session, utcnow() - timedelta(seconds=min_queued_seconds), limit)
    return list(dict.fromkeys([*requeued, *waiting]))
