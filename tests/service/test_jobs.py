"""The job function and the in-process runner, with real training on the tiny RoBERTa."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from list_core.backbone import load_backbone
from service.jobs import inprocess, progress
from service.jobs.context import JobContext
from service.jobs.execute import JobOutcome, execute_job
from service.jobs.inprocess import InProcessRunner
from service.registry import adapters, jobs, tasks, tenants
from service.registry.db import Database
from service.registry.models import Job, utcnow
from service.store import AdapterStore, directory_sha256
from tests.service.conftest import FAST_TRAINING, SLOW_TRAINING, task_body, wait_until
from tests.thread_nice import linux_only, nice_with_room_for, own_nice


@pytest.fixture
def context(tmp_path: Path, tiny_roberta_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    database.migrate()
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    yield JobContext(
        database=database,
        store=AdapterStore(tmp_path / "store"),
        backbone=lambda: backbone,
        lease_seconds=30,
        heartbeat_seconds=0.05,
        progress_interval_seconds=60,
    )
    database.dispose()


def add_task(context: JobContext, **overrides) -> tuple[str, str]:
    body = task_body(**overrides)
    with context.database.session() as session:
        tenant, _ = tenants.create_tenant(session, "acme")
    new = tasks.NewTask(
        tenant_id=tenant.id,
        name=body["name"],
        labels=body["labels"],
        template="{text} It was {mask} .",
        label_words=body["label_words"],
        method="list",
        head_kind="mlm",
        hyperparameters=body["hyperparameters"],
        examples=body["examples"],
        unlabeled=body["unlabeled"],
    )
    with context.database.session() as session:
        task, job = tasks.create_task(session, new, tasks.Quotas(10, 10), max_attempts=3)
    return task.id, job.id


def job_row(context: JobContext, job_id: str) -> Job:
    with context.database.read_session() as session:
        return jobs.get_job(session, job_id)


def event_kinds(context: JobContext, job_id: str) -> list[str]:
    with context.database.read_session() as session:
        return [e.kind for e in jobs.list_events(session, job_id, None, 1000)[0]]


def run_in_thread(context: JobContext, job_id: str) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(outcome=execute_job(job_id, context)))
    thread.start()
    wait_until(lambda: (job_row(context, job_id).progress or {}).get("step"), 30, "training")
    return thread, result


def test_a_job_trains_registers_and_reports_throttled_progress(context: JobContext) -> None:
    task_id, job_id = add_task(context)
    assert execute_job(job_id, context) is JobOutcome.SUCCEEDED
    job = job_row(context, job_id)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert job.progress["fraction"] == 1.0 and job.metrics["steps"] == 10
    with context.database.read_session() as session:
        version = adapters.latest_adapter(session, task_id)
        assert tasks.get_task_any_tenant(session, task_id).status == "ready"
    assert version.version == 1
    assert directory_sha256(context.store.absolute(version.path)) == version.sha256
    kinds = event_kinds(context, job_id)
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "succeeded"
    # one event per (session, phase) stage plus the final step, not one per training step
    stages = [("teacher", 0), ("distill", 1), ("reweight", 1), ("labeled", 1)]
    assert kinds.count("progress") == len(stages) + 1


def test_a_registry_error_while_recording_progress_does_not_fail_training(
    context: JobContext, monkeypatch
) -> None:
    _, job_id = add_task(context)

    def registry_unreachable(*args, **kwargs):
        raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))

    monkeypatch.setattr(progress, "save_progress", registry_unreachable)
    assert execute_job(job_id, context) is JobOutcome.SUCCEEDED
    assert "progress" not in event_kinds(context, job_id)


def test_a_soft_time_limit_raised_while_recording_progress_fails_the_job(
    context: JobContext, monkeypatch
) -> None:
    """Celery delivers the soft time limit as an exception wherever training is. Swallowed by
    the progress write, training went on until the hard limit killed the process, and the
    job's stale lease then gave it a second attempt."""
    _, job_id = add_task(context, hyperparameters=SLOW_TRAINING)

    def time_is_up(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(progress, "save_progress", time_is_up)
    assert execute_job(job_id, context) is JobOutcome.FAILED
    job = job_row(context, job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error.startswith("training failed: SoftTimeLimitExceeded")


def test_a_redelivered_job_is_dropped_and_registers_once(context: JobContext) -> None:
    task_id, job_id = add_task(context)
    assert execute_job(job_id, context) is JobOutcome.SUCCEEDED
    assert execute_job(job_id, context) is JobOutcome.DROPPED
    with context.database.read_session() as session:
        assert adapters.next_version(session, task_id) == 2
    assert job_row(context, job_id).attempts == 1


def test_cancel_during_training_leaves_no_adapter(context: JobContext) -> None:
    task_id, job_id = add_task(context, hyperparameters=SLOW_TRAINING)
    thread, result = run_in_thread(context, job_id)
    with context.database.session() as session:
        jobs.request_cancel(session, job_id)
    thread.join(30)
    assert result["outcome"] is JobOutcome.CANCELLED
    assert job_row(context, job_id).status == "cancelled"
    with context.database.read_session() as session:
        assert adapters.latest_adapter(session, task_id) is None
        assert tasks.get_task_any_tenant(session, task_id).status == "cancelled"
    assert not list(context.store.root.rglob("*.safetensors"))


def test_bad_task_data_fails_with_a_readable_reason(context: JobContext) -> None:
    _, job_id = add_task(context, label_words={"positive": "great", "negative": "zzqxjv"})
    assert execute_job(job_id, context) is JobOutcome.FAILED
    job = job_row(context, job_id)
    assert job.status == "failed"
    assert job.error.startswith("invalid task: label_words.negative")
    assert execute_job(job_id, context) is JobOutcome.DROPPED  # no crash loop


def test_shutdown_releases_the_job_without_counting_the_attempt(context: JobContext) -> None:
    _, job_id = add_task(context, hyperparameters=SLOW_TRAINING)
    thread, result = run_in_thread(context, job_id)
    context.shutdown.set()
    thread.join(30)
    assert result["outcome"] is JobOutcome.RELEASED
    job = job_row(context, job_id)
    assert (job.status, job.attempts) == ("queued", 0)


def test_a_worker_that_lost_its_lease_stops_and_changes_nothing(context: JobContext) -> None:
    task_id, job_id = add_task(context, hyperparameters=SLOW_TRAINING)
    thread, result = run_in_thread(context, job_id)
    # In one transaction (so no heartbeat slips in between): the lease looks stale, and
    # another worker takes the job.
    with context.database.session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1))
        )
        assert jobs.claim_job(session, job_id, "other-worker", 30).claimed
    thread.join(30)
    assert result["outcome"] is JobOutcome.LEASE_LOST
    job = job_row(context, job_id)
    assert (job.status, job.lease_owner, job.attempts) == ("running", "other-worker", 2)
    with context.database.read_session() as session:
        assert adapters.latest_adapter(session, task_id) is None


def test_the_runner_resumes_jobs_a_dead_process_left_behind(context: JobContext) -> None:
    task_id, stale_id = add_task(context)
    _, queued_id = add_task(context, hyperparameters=FAST_TRAINING)
    with context.database.session() as session:  # a process died mid-training long ago
        jobs.claim_job(session, stale_id, "dead", 30, now=utcnow() - timedelta(minutes=5))
    runner = InProcessRunner(context, threads=1, sweep_interval_seconds=0.2, nice=0)
    runner.start()
    try:
        for job_id in (stale_id, queued_id):
            wait_until(lambda j=job_id: job_row(context, j).status == "succeeded", 60, job_id)
    finally:
        runner.stop()
    assert job_row(context, stale_id).attempts == 2
    assert "lease_expired" in event_kinds(context, stale_id)
    with context.database.read_session() as session:
        assert adapters.latest_adapter(session, task_id).version == 1


@linux_only
def test_the_runner_trains_at_the_lowered_priority(context: JobContext, monkeypatch) -> None:
    """In-process training shares the API process's cores with serving: it runs at the model
    threads' priority, below the event loop and the adapter loader."""
    base = nice_with_room_for(3)
    seen: list[int] = []

    def recording(job_id: str, job_context: JobContext) -> JobOutcome:
        seen.append(own_nice())
        return execute_job(job_id, job_context)

    monkeypatch.setattr(inprocess, "execute_job", recording)
    _, job_id = add_task(context, hyperparameters=FAST_TRAINING)
    runner = InProcessRunner(context, threads=1, sweep_interval_seconds=60, nice=3)
    runner.start()
    try:
        runner.submit(job_id)
        wait_until(lambda: job_row(context, job_id).status == "succeeded", 60, job_id)
    finally:
        runner.stop()
    assert seen == [base + 3]
