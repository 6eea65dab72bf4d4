"""Adapter versions: the idempotent registration that ends a training job, and lookups."""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, Integer, Row, and_, bindparam, func, select
from sqlalchemy.orm import Session

from service.registry.jobs import add_event, end_job_succeeded, finish_job
from service.registry.models import AdapterVersion, Job, Task, utcnow
from service.registry.states import JOB_CANCEL_REQUESTED, JOB_CANCELLED, JOB_RUNNING


class RegisterOutcome(StrEnum):
    REGISTERED = "registered"
    ALREADY_REGISTERED = "already_registered"  # a re-delivered job: the first version stands
    LEASE_LOST = "lease_lost"  # another worker owns the job now; discard these files
    CANCELLED = "cancelled"  # cancel (or task deletion) came first; the job is now cancelled
    VERSION_TAKEN = "version_taken"  # another job registered this version; write again


@dataclass(frozen=True)
class Registration:
    outcome: RegisterOutcome
    version: AdapterVersion | None = None


def next_version(session: Session, task_id: str) -> int:
    highest = session.scalar(
        select(func.max(AdapterVersion.version)).where(AdapterVersion.task_id == task_id)
    )
    return (highest or 0) + 1


def adapter_for_job(session: Session, job_id: str) -> AdapterVersion | None:
    return session.scalar(select(AdapterVersion).where(AdapterVersion.job_id == job_id))


def latest_adapter(session: Session, task_id: str) -> AdapterVersion | None:
    """The newest registered version (which the task need not serve: see `serving_adapter`)."""
    return session.scalar(
        select(AdapterVersion)
        .where(AdapterVersion.task_id == task_id)
        .order_by(AdapterVersion.version.desc())
        .limit(1)
    )


def serving_adapter(session: Session, task: Task) -> AdapterVersion | None:
    """The version the task serves (None before its first one registers)."""
    if task.serving_version is None:
        return None
    return get_version(session, task.id, task.serving_version)


def get_version(session: Session, task_id: str, version: int) -> AdapterVersion | None:
    return session.scalar(
        select(AdapterVersion).where(
            AdapterVersion.task_id == task_id, AdapterVersion.version == version
        )
    )


def list_versions(session: Session, task_id: str) -> list[AdapterVersion]:
    """Every registered version of the task, newest first (a task has a handful)."""
    return list(
        session.scalars(
            select(AdapterVersion)
            .where(AdapterVersion.task_id == task_id)
            .order_by(AdapterVersion.version.desc())
        )
    )


def serving_adapters(session: Session, tasks: list[Task]) -> dict[str, AdapterVersion]:
    """The served version of each task that has one, in one query."""
    wanted = {(t.id, t.serving_version) for t in tasks if t.serving_version is not None}
    if not wanted:
        return {}
    rows = session.scalars(
        select(AdapterVersion).where(AdapterVersion.task_id.in_([task for task, _ in wanted]))
    )
    return {row.task_id: row for row in rows if (row.task_id, row.version) in wanted}


def promote_version(session: Session, task: Task, version: int) -> AdapterVersion | None:
    """Serve `version` of the (locked) task from now on; None if it has no such version."""
    row = get_version(session, task.id, version)
    if row is None:
        return None
    task.serving_version = version
    task.updated_at = utcnow()
    session.flush()
    return row


_tasks, _versions = Task.__table__.c, AdapterVersion.__table__.c
SERVING_TARGET_QUERY = (
    select(
        _tasks.status,
        _tasks.labels,
        _tasks.template,
        _tasks.head_kind,
        _tasks.method,
        _tasks.prediction_key,
        _versions.version,
        _versions.path,
        _versions.sha256,
    )
    .select_from(Task.__table__)
    .outerjoin(
        AdapterVersion.__table__,
        and_(
            _versions.task_id == _tasks.id,
            _versions.version
            == func.coalesce(bindparam("version", type_=Integer), _tasks.serving_version),
        ),
    )
    .where(
        _tasks.id == bindparam("task_id"),
        _tasks.tenant_id == bindparam("tenant_id"),
        _tasks.deleted_at.is_(None),
    )
)


def serving_target(
    connection: Connection, tenant_id: str, task_id: str, version: int | None = None
) -> Row | None:
    """The tenant's live task and the version to serve: `version` when given, else the one the
    task serves (None columns where there is no such version), in one Core query of the few
    columns `/predict` needs: it runs on every request, and loading ORM objects (JSON
    hyperparameters, metrics and all) was the front end's largest GIL cost."""
    parameters = {"task_id": task_id, "tenant_id": tenant_id, "version": version}
    return connection.execute(SERVING_TARGET_QUERY, parameters).first()


def register_adapter(
    session: Session,
    job_id: str,
    owner: str,
    version: int,
    path: str,
    sha256: str,
    size_bytes: int,
    backbone_fingerprint: str,
    metrics: dict,
    promotion: dict | None = None,
) -> Registration:
    """Record the version (files already in the store at `path`, relative to its root), mark
    the task ready and the job succeeded — one transaction. The task serves the new version
    unless `promotion` (the job's decision, recorded as a `promotion` event) says
    `"promoted": False`; a task's first version is always served.

    Idempotent by `job_id` (unique in the table): a second call for the same job returns the
    first registration and changes nothing.
    """
    existing = adapter_for_job(session, job_id)
    if existing is not None:
        return Registration(RegisterOutcome.ALREADY_REGISTERED, existing)
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if (
        job is None
        or job.lease_owner != owner
        or job.status not in (JOB_RUNNING, JOB_CANCEL_REQUESTED)
    ):
        return Registration(RegisterOutcome.LEASE_LOST)
    task = session.scalar(
        select(Task)
        .where(Task.id == job.task_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job.status == JOB_CANCEL_REQUESTED or task is None or task.deleted_at is not None:
        finish_job(
            session,
            job_id,
            owner,
            JOB_CANCELLED,
            details={"reason": "cancelled before registration"},
        )
        return Registration(RegisterOutcome.CANCELLED)
    if next_version(session, task.id) != version:
        return Registration(RegisterOutcome.VERSION_TAKEN)
    row = AdapterVersion(
        task_id=task.id,
        tenant_id=task.tenant_id,
        job_id=job_id,
        version=version,
        path=path,
        sha256=sha256,
        size_bytes=size_bytes,
        backbone_fingerprint=backbone_fingerprint,
        metrics=metrics,
    )
    session.add(row)
    session.flush()
    promoted = task.serving_version is None or (promotion or {}).get("promoted", True)
    if promotion is not None:
        add_event(session, job_id, "promotion", {**promotion, "promoted": promoted})
    if promoted:
        task.serving_version = version
    end_job_succeeded(session, job, {**metrics, "version": version, "promoted": promoted})
    add_event(
        session,
        job_id,
        "succeeded",
        {"version": version, "sha256": sha256, "promoted": promoted},
    )
    session.flush()
    return Registration(RegisterOutcome.REGISTERED, row)
