"""The job function: one attempt at training a task, from claim to registered adapter.

Both runners call `execute_job`. It never raises for a job's own problems: bad data, a training
error or a cancel end the job in the registry with a readable reason, because a message that
keeps failing would otherwise be re-delivered forever.
"""

import logging
from dataclasses import dataclass
from enum import StrEnum

from list_core.data import Example
from list_core.field_error import FieldError
from list_core.progress import TrainingCancelled
from list_core.prompts import TaskSpec
from list_core.training import TrainingResult, train_task
from service.jobs.context import JobContext
from service.jobs.job_metrics import recorded
from service.jobs.lease import LeaseKeeper
from service.jobs.progress import ProgressWriter
from service.jobs.promotion import ServedVersion, decide
from service.metrics import TRAINING_SECONDS
from service.registry.adapters import (
    RegisterOutcome,
    get_version,
    next_version,
    register_adapter,
)
from service.registry.jobs import ClaimOutcome, claim_job, finish_job, release_job
from service.registry.models import Job
from service.registry.states import JOB_CANCELLED, JOB_FAILED
from service.registry.tasks import get_task_any_tenant, get_task_data

log = logging.getLogger(__name__)

MAX_REGISTER_TRIES = 3


class JobOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"  # nothing to do: finished, held by a live worker, or missing
    LEASE_LOST = "lease_lost"  # another worker took over mid-run; its result counts
    RELEASED = "released"  # shutdown interrupted training; the job is queued again


_UNCLAIMED = {ClaimOutcome.CANCELLED: JobOutcome.CANCELLED, ClaimOutcome.GAVE_UP: JobOutcome.FAILED}


@dataclass(frozen=True)
class TrainingInput:
    """A task's training inputs, read from the registry and detached from any session."""

    job: Job
    tenant_id: str
    task_id: str
    spec_args: dict
    method: str
    tuner: str
    hyperparameters: dict
    examples: list[Example]
    unlabeled: list[str]
    evaluation: list[Example]
    kind: str
    promote: str | None
    served: ServedVersion | None


@recorded
def execute_job(job_id: str, context: JobContext) -> JobOutcome:
    """Claim the job, train, register the adapter; every ending is recorded in the registry."""
    with context.database.session() as session:
        claim = claim_job(session, job_id, context.owner, context.lease_seconds)
    if not claim.claimed:
        log.info("job not run", extra={"job_id": job_id, "claim": claim.outcome.value})
        return _UNCLAIMED.get(claim.outcome, JobOutcome.DROPPED)
    log.info("job started", extra={"job_id": job_id, "attempt": claim.job.attempts})
    with LeaseKeeper(context, job_id) as lease:
        try:
            inputs = _load_inputs(context, claim.job)
            result = _train(context, inputs, lease)
            promotion = decide(
                context, inputs.kind, inputs.promote, inputs.served, inputs.evaluation, result
            )
        except TrainingCancelled:
            return _stopped(context, job_id, lease)
        except FieldError as error:
            return _fail(context, job_id, f"invalid task: {error}", "invalid_training_data")
        except Exception as error:
            log.exception("training failed", extra={"job_id": job_id})
            reason = f"training failed: {type(error).__name__}: {error}"
            return _fail(context, job_id, reason, "training_error")
        return _register(context, inputs, result, promotion)


def _load_inputs(context: JobContext, job: Job) -> TrainingInput:
    with context.database.read_session() as session:
        task = get_task_any_tenant(session, job.task_id)
        data = get_task_data(session, job.task_id)
        if task is None or data is None or task.deleted_at is not None:
            raise TrainingCancelled("the task was deleted")
        serving = (
            get_version(session, task.id, task.serving_version)
            if task.serving_version is not None
            else None
        )
        return TrainingInput(
            job=job,
            tenant_id=task.tenant_id,
            task_id=task.id,
            spec_args={
                "labels": list(task.labels),
                "template": task.template,
                "label_words": dict(task.label_words),
            },
            method=task.method,
            tuner=task.tuner,
            hyperparameters=dict(task.hyperparameters),
            examples=[_example(record) for record in data.examples],
            unlabeled=list(data.unlabeled),
            evaluation=[_example(record) for record in data.evaluation],
            kind=job.kind,
            promote=job.promote,
            served=ServedVersion(serving.version, serving.path, serving.sha256)
            if serving is not None
            else None,
        )


def _example(record: dict) -> Example:
    return Example(text=record["text"], label=record.get("label"), text_b=record.get("text_b"))


def _train(context: JobContext, inputs: TrainingInput, lease: LeaseKeeper) -> TrainingResult:
    backbone = context.backbone()
    progress = ProgressWriter(context, inputs.job.id, lease)
    result = train_task(
        backbone,
        TaskSpec.create(**inputs.spec_args),
        inputs.examples,
        inputs.unlabeled,
        inputs.method,
        inputs.hyperparameters,
        inputs.evaluation,
        progress=progress,
        should_cancel=lease.should_stop,
        tuner=inputs.tuner,
    )
    progress.finish()
    TRAINING_SECONDS.observe(result.metrics["train_seconds"])
    return result


def _register(
    context: JobContext, inputs: TrainingInput, result: TrainingResult, promotion: dict | None
) -> JobOutcome:
    """Store the files, then record them in one transaction; retry if a version collides."""
    backbone = context.backbone()
    job_id = inputs.job.id
    metrics = {**result.metrics, "hyperparameters": result.hyperparameters.as_dict()}
    for _ in range(MAX_REGISTER_TRIES):
        with context.database.read_session() as session:
            version = next_version(session, inputs.task_id)
        try:
            stored = context.store.write(
                inputs.tenant_id,
                inputs.task_id,
                version,
                result.model,
                backbone,
                result.metrics,
                result.hyperparameters.as_dict(),
            )
        except OSError as error:
            log.exception("could not write adapter", extra={"job_id": job_id})
            reason = f"could not write the adapter to the store: {error}"
            return _fail(context, job_id, reason, "store_error")
        with context.database.session() as session:
            registration = register_adapter(
                session,
                job_id,
                context.owner,
                version,
                path=stored.path,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                backbone_fingerprint=backbone.fingerprint,
                metrics=metrics,
                promotion=promotion,
            )
        outcome = registration.outcome
        if outcome is RegisterOutcome.REGISTERED:
            log.info("adapter registered", extra={"job_id": job_id, "version": version})
            if context.on_registered is not None:
                context.on_registered(inputs.tenant_id, inputs.task_id, version)
            return JobOutcome.SUCCEEDED
        context.store.remove(stored.path)
        if outcome is RegisterOutcome.ALREADY_REGISTERED:
            return JobOutcome.SUCCEEDED
        if outcome is RegisterOutcome.CANCELLED:
            return JobOutcome.CANCELLED
        if outcome is RegisterOutcome.LEASE_LOST:
            log.warning("lease lost before registration", extra={"job_id": job_id})
            return JobOutcome.LEASE_LOST
    reason = "could not register: adapter versions kept colliding"
    return _fail(context, job_id, reason, "registration_conflict")


def _stopped(context: JobContext, job_id: str, lease: LeaseKeeper) -> JobOutcome:
    """Training stopped early: lost lease, shutdown (back to the queue) or a real cancel."""
    if lease.lease_lost.is_set():
        return JobOutcome.LEASE_LOST
    if context.shutdown.is_set() and not lease.cancel_requested.is_set():
        with context.database.session() as session:
            released = release_job(session, job_id, context.owner, "service shutting down")
        return JobOutcome.RELEASED if released else JobOutcome.LEASE_LOST
    with context.database.session() as session:
        ended = finish_job(session, job_id, context.owner, JOB_CANCELLED)
    log.info("job cancelled", extra={"job_id": job_id})
    return JobOutcome.CANCELLED if ended else JobOutcome.LEASE_LOST


def _fail(context: JobContext, job_id: str, reason: str, code: str) -> JobOutcome:
    """End the job as failed; `code` says whose fault (`states.ERROR_FAULTS`)."""
    with context.database.session() as session:
        ended = finish_job(session, job_id, context.owner, JOB_FAILED, error=reason, code=code)
    log.info("job failed", extra={"job_id": job_id})
    return JobOutcome.FAILED if ended else JobOutcome.LEASE_LOST
