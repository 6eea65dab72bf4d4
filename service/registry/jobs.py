"""Training jobs: listing, events, cancellation, and the lease protocol runners rely on.

A runner `claim_job`s before training (attempt + 1, lease taken), keeps the lease alive with
`renew_lease`/`save_progress`, and ends with `finish_job` (or `adapters.register_adapter`). Every
write after the claim is conditional on still holding the lease, so a worker that stalled past
its lease and lost the job to another cannot overwrite the new attempt. `sweep_stale_leases`
returns jobs whose worker stopped heartbeating to the queue.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.registry.models import AdapterVersion, Job, JobEvent, Task, utcnow
from service.registry.paging import newest_first_page
from service.registry.states import (
    FINAL_JOB_STATUSES,
    JOB_CANCEL_REQUESTED,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    TASK_CANCELLED,
    TASK_FAILED,
    TASK_READY,
)

_HELD = (JOB_RUNNING, JOB_CANCEL_REQUESTED)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    MISSING = "missing"
    FINISHED = "finished"  # already succeeded, failed or cancelled: drop the message
    LEASED = "leased"  # a live worker holds it: drop the message
    GAVE_UP = "gave_up"  # over the attempt cap: now failed
    CANCELLED = "cancelled"  # cancel was requested while no live worker held it


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    job: Job | None = None

    @property
    def claimed(self) -> bool:
        return self.outcome is ClaimOutcome.CLAIMED


@dataclass(frozen=True)
class LeaseState:
    held: bool
    cancel_requested: bool = False


class JobAlreadyFinished(Exception):
    """Cancel asked for a job that already ended."""


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id, populate_existing=True)


def get_tenant_job(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """The tenant's job; None for a missing job and for another tenant's alike."""
    job = get_job(session, job_id)
    return job if job is not None and job.tenant_id == tenant_id else None


def list_jobs(
    session: Session,
    limit: int,
    after: str | None = None,
    status: str | None = None,
    tenant_id: str | None = None,
    task_id: str | None = None,
) -> tuple[list[Job], bool]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    if task_id is not None:
        query = query.where(Job.task_id == task_id)
    return newest_first_page(session, Job, query, limit, after)


def add_event(session: Session, job_id: str, kind: str, data: dict | None = None) -> None:
    session.add(JobEvent(job_id=job_id, kind=kind, data=data or {}, created_at=utcnow()))


def list_events(
    session: Session, job_id: str, after: int | None, limit: int
) -> tuple[list[JobEvent], bool]:
    """Events oldest first (they are a log); `after` is the last event id already seen."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        query = query.where(JobEvent.id > after)
    rows = list(session.scalars(query.order_by(JobEvent.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def events_between(session: Session, job_id: str, above: int, upto: int) -> list[JobEvent]:
    """Events with `above` < id <= `upto`: a stream's look back for ids that committed late."""
    if upto <= above:
        return []
    query = select(JobEvent).where(
        JobEvent.job_id == job_id, JobEvent.id > above, JobEvent.id <= upto
    )
    return list(session.scalars(query.order_by(JobEvent.id)))


def claim_job(
    session: Session, job_id: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> Claim:
    """Take a queued job (or one whose lease went stale) for `owner`; count the attempt."""
    now = now or utcnow()
    claimable = or_(
        Job.status == JOB_QUEUED,
        and_(Job.status == JOB_RUNNING, Job.lease_expires_at < now),
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts < Job.max_attempts, claimable)
        .values(
            status=JOB_RUNNING,
            attempts=Job.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            started_at=now,
            error=None,
            error_code=None,
        )
        .execution_options(synchronize_session=False)
    )
    job = get_job(session, job_id)
    if result.rowcount == 1:
        add_event(session, job_id, "started", {"attempt": job.attempts, "owner": owner})
        return Claim(ClaimOutcome.CLAIMED, job)
    if job is None:
        return Claim(ClaimOutcome.MISSING)
    if job.status in FINAL_JOB_STATUSES:
        return Claim(ClaimOutcome.FINISHED, job)
    lease_live = job.lease_expires_at is not None and job.lease_expires_at >= now
    if job.status in _HELD and lease_live:
        return Claim(ClaimOutcome.LEASED, job)
    if job.status == JOB_CANCEL_REQUESTED:
        _end(session, job, JOB_CANCELLED, now, error=None)
        add_event(session, job_id, "cancelled", {"reason": "cancel requested; no live worker"})
        return Claim(ClaimOutcome.CANCELLED, job)
    reason = f"gave up after {job.attempts} attempts (limit {job.max_attempts})"
    _end(session, job, JOB_FAILED, now, error=reason, code="attempts_exhausted")
    add_event(session, job_id, "failed", {"error": reason, "code": "attempts_exhausted"})
    return Claim(ClaimOutcome.GAVE_UP, job)


def renew_lease(
    session: Session, job_id: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> LeaseState:
    """Heartbeat: extend the lease if `owner` still holds it; report a pending cancel."""
    return _renew_held_lease(session, job_id, owner, lease_seconds, now or utcnow())


def save_progress(
    session: Session,
    job_id: str,
    owner: str,
    progress: dict,
    event: dict,
    lease_seconds: float,
) -> LeaseState:
    """Record where training is (job row + a `progress` event) and renew the lease."""
    state = _renew_held_lease(session, job_id, owner, lease_seconds, utcnow(), progress=progress)
    if state.held:
        add_event(session, job_id, "progress", event)
    return state


def _renew_held_lease(
    session: Session, job_id: str, owner: str, lease_seconds: float, now: datetime, **values
) -> LeaseState:
    """Extend the lease (and set `values` on the job) only while `owner` holds it."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status.in_(_HELD))
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return LeaseState(held=False)
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    return LeaseState(held=True, cancel_requested=status == JOB_CANCEL_REQUESTED)


def finish_job(
    session: Session,
    job_id: str,
    owner: str,
    status: str,
    error: str | None = None,
    details: dict | None = None,
    code: str | None = None,
) -> bool:
    """End a held job as `failed` or `cancelled`; False (and no change) if the lease is lost.
    A failure's `code` is one of `states.ERROR_FAULTS`."""
    if status not in (JOB_FAILED, JOB_CANCELLED):
        raise ValueError(f"finish_job ends jobs as failed or cancelled, not {status!r}")
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status.in_(_HELD))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        return False
    _end(session, job, status, utcnow(), error=error, code=code)
    event = {"error": error, **({"code": code} if code else {}), **(details or {})}
    add_event(session, job_id, status, event)
    return True


def release_job(session: Session, job_id: str, owner: str, reason: str) -> bool:
    """Hand a held job back to the queue on a clean shutdown; the interrupted attempt is not
    counted against the cap (it did not fail). False if the lease was already lost."""
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JOB_RUNNING)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        return False
    job.status, job.lease_owner, job.lease_expires_at = JOB_QUEUED, None, None
    job.attempts = max(job.attempts - 1, 0)
    add_event(session, job_id, "released", {"reason": reason})
    session.flush()
    return True


def request_cancel(session: Session, job_id: str) -> Job | None:
    """A queued job is cancelled at once; a running one is flagged and stops at its next check."""
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        return None
    if job.status in FINAL_JOB_STATUSES:
        raise JobAlreadyFinished(f"job {job_id} already {job.status}")
    if job.status == JOB_QUEUED:
        _end(session, job, JOB_CANCELLED, utcnow(), error=None)
        add_event(session, job_id, "cancelled", {"reason": "cancelled while queued"})
    elif job.status == JOB_RUNNING:
        job.status, job.cancel_requested = JOB_CANCEL_REQUESTED, True
        add_event(session, job_id, "cancel_requested", {})
    session.flush()
    return job


def sweep_stale_leases(session: Session, now: datetime | None = None) -> list[str]:
    """Return jobs whose worker stopped heartbeating to `queued` (ids to re-enqueue); a stale
    job with a pending cancel is cancelled instead. Over-cap jobs fail at their next claim."""
    now = now or utcnow()
    stale = list(
        session.scalars(
            select(Job)
            .where(Job.status.in_(_HELD), Job.lease_expires_at < now)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )
    requeued = []
    for job in stale:
        if job.status == JOB_CANCEL_REQUESTED:
            _end(session, job, JOB_CANCELLED, now, error=None)
            add_event(session, job.id, "cancelled", {"reason": "worker lost during cancel"})
            continue
        add_event(
            session,
            job.id,
            "lease_expired",
            {"owner": job.lease_owner, "heartbeat_at": _iso(job.heartbeat_at)},
        )
        job.status, job.lease_owner, job.lease_expires_at = JOB_QUEUED, None, None
        job.enqueued_at = None  # with no runner now: sweeps send it until one takes it
        requeued.append(job.id)
    session.flush()
    return requeued


def queued_job_ids(
    session: Session, enqueued_before: datetime | None = None, limit: int = 100
) -> list[str]:
    """Queued jobs, oldest first; with `enqueued_before`, only those never handed to a runner
    or handed over before that time (a broker that lost them, or was down)."""
    query = select(Job.id).where(Job.status == JOB_QUEUED)
    if enqueued_before is not None:
        query = query.where(or_(Job.enqueued_at.is_(None), Job.enqueued_at < enqueued_before))
    return list(session.scalars(query.order_by(Job.created_at, Job.id).limit(limit)))


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(enqueued_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _end(
    session: Session,
    job: Job,
    status: str,
    now: datetime,
    error: str | None,
    code: str | None = None,
) -> None:
    """Final job status, and the task's status to match unless an adapter is already serving."""
    job.status, job.finished_at, job.error = status, now, error
    job.error_code = code if status == JOB_FAILED else None
    job.lease_owner, job.lease_expires_at = None, None
    task = session.get(Task, job.task_id)
    if task is None or task.deleted_at is not None:
        return
    has_adapter = session.scalar(
        select(func.count()).select_from(AdapterVersion).where(AdapterVersion.task_id == task.id)
    )
    if status == JOB_SUCCEEDED or has_adapter:
        task.status = TASK_READY
    else:
        task.status = TASK_FAILED if status == JOB_FAILED else TASK_CANCELLED
    task.updated_at = now


def end_job_succeeded(session: Session, job: Job, metrics: dict) -> None:
    """Used by `adapters.register_adapter` inside its transaction."""
    _end(session, job, JOB_SUCCEEDED, utcnow(), error=None)
    job.metrics = metrics


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
