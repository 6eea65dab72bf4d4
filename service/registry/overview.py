"""Cross-tenant reads for operators (the admin dashboard): every live task, tenant names, and
the job queue as the registry sees it, whichever process runs the jobs."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.registry.models import Job, Task, Tenant
from service.registry.paging import newest_first_page
from service.registry.states import ACTIVE_JOB_STATUSES, JOB_CANCEL_REQUESTED, JOB_RUNNING


@dataclass(frozen=True)
class Worker:
    """A lease owner (an API process's runner or a Celery worker) holding running jobs."""

    owner: str
    running_jobs: int
    last_heartbeat_at: datetime | None
    lease_expires_at: datetime | None


def list_all_tasks(
    session: Session, limit: int, after: str | None, tenant_id: str | None = None
) -> tuple[list[Task], bool]:
    """Every tenant's live tasks (or one tenant's), newest first."""
    query = select(Task).where(Task.deleted_at.is_(None))
    if tenant_id is not None:
        query = query.where(Task.tenant_id == tenant_id)
    return newest_first_page(session, Task, query, limit, after)


def get_live_task(session: Session, task_id: str) -> Task | None:
    """A live task of any tenant; None for a missing or deleted one."""
    return session.scalar(select(Task).where(Task.id == task_id, Task.deleted_at.is_(None)))


def tenant_names(session: Session, tenant_ids: list[str]) -> dict[str, str]:
    if not tenant_ids:
        return {}
    rows = session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(set(tenant_ids))))
    return {row[0]: row[1] for row in rows}


def task_names(session: Session, task_ids: list[str]) -> dict[str, tuple[str, str]]:
    """`{task id: (task name, tenant id)}` for the given ids, deleted tasks included (a
    process's counters outlive the task)."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(Task.id, Task.name, Task.tenant_id).where(Task.id.in_(set(task_ids)))
    )
    return {task_id: (name, tenant) for task_id, name, tenant in rows}


def active_job_counts(session: Session) -> dict[str, int]:
    """How many jobs are queued, running and cancel-requested now (every tenant)."""
    rows = session.execute(
        select(Job.status, func.count())
        .where(Job.status.in_(ACTIVE_JOB_STATUSES))
        .group_by(Job.status)
    )
    counts = dict.fromkeys(ACTIVE_JOB_STATUSES, 0)
    counts.update({row[0]: row[1] for row in rows})
    return counts


def workers(session: Session) -> list[Worker]:
    """The lease owners of running jobs, with their latest heartbeat: a worker whose leases
    expire without a heartbeat is gone (the sweep re-queues its jobs)."""
    rows = session.execute(
        select(
            Job.lease_owner,
            func.count(),
            func.max(Job.heartbeat_at),
            func.max(Job.lease_expires_at),
        )
        .where(Job.status.in_((JOB_RUNNING, JOB_CANCEL_REQUESTED)), Job.lease_owner.is_not(None))
        .group_by(Job.lease_owner)
        .order_by(Job.lease_owner)
    )
    return [Worker(owner, count, beat, expires) for owner, count, beat, expires in rows]
