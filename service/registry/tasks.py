"""Tasks, their training data, and creating a task together with its first job."""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.registry.ids import new_id
from service.registry.jobs import add_event
from service.registry.models import AdapterVersion, Job, Task, TaskData, Tenant, utcnow
from service.registry.paging import newest_first_page
from service.registry.states import (
    ACTIVE_JOB_STATUSES,
    JOB_CANCEL_REQUESTED,
    JOB_CANCELLED,
    JOB_CREATE,
    JOB_QUEUED,
    JOB_RETRAIN,
    JOB_RUNNING,
    TASK_TRAINING,
)


@dataclass(frozen=True)
class NewTask:
    """A validated task as the registry stores it (texts included)."""

    tenant_id: str
    name: str
    labels: list[str]
    template: str
    label_words: dict[str, str]
    method: str
    head_kind: str
    hyperparameters: dict
    examples: list[dict]
    unlabeled: list[str] = field(default_factory=list)
    evaluation: list[dict] = field(default_factory=list)
    tuner: str = "adapter"


@dataclass(frozen=True)
class Quotas:
    max_tasks: int
    max_active_jobs: int


class QuotaExceeded(Exception):
    """A per-tenant limit would be exceeded; `kind` is `tasks` or `active_jobs`."""

    def __init__(self, kind: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.limit = limit
        self.message = message


def create_task(
    session: Session, new: NewTask, quotas: Quotas, max_attempts: int
) -> tuple[Task, Job]:
    """Persist the task, its data and a `queued` job in one transaction, within the quotas."""
    _lock_tenant(session, new.tenant_id)
    tasks = count_tasks(session, new.tenant_id)
    if tasks >= quotas.max_tasks:
        raise QuotaExceeded(
            "tasks",
            quotas.max_tasks,
            f"this tenant already has {tasks} tasks (limit {quotas.max_tasks}); delete one first",
        )
    _check_active_jobs(session, new.tenant_id, quotas)
    now = utcnow()
    task = Task(
        id=new_id("tsk"),
        tenant_id=new.tenant_id,
        name=new.name,
        status=TASK_TRAINING,
        labels=list(new.labels),
        template=new.template,
        label_words=dict(new.label_words),
        method=new.method,
        head_kind=new.head_kind,
        tuner=new.tuner,
        hyperparameters=dict(new.hyperparameters),
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    session.add(
        TaskData(
            task_id=task.id,
            examples=list(new.examples),
            unlabeled=list(new.unlabeled),
            evaluation=list(new.evaluation),
        )
    )
    return task, _queue_job(session, task, max_attempts, JOB_CREATE, None)


class TaskBusy(Exception):
    """The task already has a job queued or running; `job_id` names it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the task already has a training job in progress ({job_id})")
        self.job_id = job_id


def create_retrain(
    session: Session, task: Task, quotas: Quotas, max_attempts: int, promote: str
) -> Job:
    """Queue a job training a new version of the (locked) task from all its data, within the
    tenant's active-job quota; the version it serves keeps serving until then."""
    _lock_tenant(session, task.tenant_id)
    busy = session.scalar(
        select(Job.id).where(Job.task_id == task.id, Job.status.in_(ACTIVE_JOB_STATUSES))
    )
    if busy is not None:
        raise TaskBusy(busy)
    _check_active_jobs(session, task.tenant_id, quotas)
    if task.serving_version is None:
        task.status = TASK_TRAINING
    task.updated_at = utcnow()
    return _queue_job(session, task, max_attempts, JOB_RETRAIN, promote)


def _queue_job(
    session: Session, task: Task, max_attempts: int, kind: str, promote: str | None
) -> Job:
    job = Job(
        id=new_id("job"),
        task_id=task.id,
        tenant_id=task.tenant_id,
        status=JOB_QUEUED,
        kind=kind,
        promote=promote,
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, "queued", {"task_id": task.id, "kind": kind, "promote": promote})
    return job


def _check_active_jobs(session: Session, tenant_id: str, quotas: Quotas) -> None:
    active = count_active_jobs(session, tenant_id)
    if active >= quotas.max_active_jobs:
        raise QuotaExceeded(
            "active_jobs",
            quotas.max_active_jobs,
            f"this tenant already has {active} training jobs queued or running "
            f"(limit {quotas.max_active_jobs}); retry when one finishes",
        )


def _lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise check-then-insert per tenant (PostgreSQL row lock; SQLite's BEGIN IMMEDIATE
    already holds the database write lock)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def count_tasks(session: Session, tenant_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.tenant_id == tenant_id, Task.deleted_at.is_(None))
    )


def count_active_jobs(session: Session, tenant_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE_JOB_STATUSES))
    )


def get_task(session: Session, tenant_id: str, task_id: str) -> Task | None:
    """The tenant's live task; None for a missing task and for another tenant's alike."""
    return session.scalar(
        select(Task).where(
            Task.id == task_id, Task.tenant_id == tenant_id, Task.deleted_at.is_(None)
        )
    )


def lock_task(session: Session, tenant_id: str, task_id: str) -> Task | None:
    """`get_task` holding the task's row lock (PostgreSQL; SQLite's write lock already) until
    the transaction ends, so concurrent writers to one task's data take turns."""
    return session.scalar(
        select(Task)
        .where(Task.id == task_id, Task.tenant_id == tenant_id, Task.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def get_task_any_tenant(session: Session, task_id: str) -> Task | None:
    """For the job runner, which works on behalf of whichever tenant owns the task."""
    return session.get(Task, task_id)


def list_tasks(
    session: Session, tenant_id: str, limit: int, after: str | None
) -> tuple[list[Task], bool]:
    query = select(Task).where(Task.tenant_id == tenant_id, Task.deleted_at.is_(None))
    return newest_first_page(session, Task, query, limit, after)


def get_task_data(session: Session, task_id: str) -> TaskData | None:
    return session.get(TaskData, task_id)


def latest_jobs(session: Session, task_ids: list[str]) -> dict[str, Job]:
    """The newest job of each task."""
    if not task_ids:
        return {}
    jobs = session.scalars(
        select(Job).where(Job.task_id.in_(task_ids)).order_by(Job.created_at, Job.id)
    )
    return {job.task_id: job for job in jobs}


def delete_task(session: Session, tenant_id: str, task_id: str) -> Task | None:
    """Soft-delete the task (jobs keep their history), drop its texts and adapter records,
    cancel its active jobs. The caller removes the adapter files after commit."""
    task = get_task(session, tenant_id, task_id)
    if task is None:
        return None
    now = utcnow()
    task.deleted_at = now
    task.updated_at = now
    data = session.get(TaskData, task_id)
    if data is not None:
        session.delete(data)
    for job in session.scalars(
        select(Job).where(Job.task_id == task_id, Job.status.in_(ACTIVE_JOB_STATUSES))
    ):
        if job.status == JOB_QUEUED:
            job.status, job.finished_at = JOB_CANCELLED, now
            add_event(session, job.id, "cancelled", {"reason": "task deleted"})
        elif job.status == JOB_RUNNING:
            job.status, job.cancel_requested = JOB_CANCEL_REQUESTED, True
            add_event(session, job.id, "cancel_requested", {"reason": "task deleted"})
    for version in session.scalars(select(AdapterVersion).where(AdapterVersion.task_id == task_id)):
        session.delete(version)
    session.flush()
    return task
