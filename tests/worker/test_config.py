"""Celery settings for long jobs, queue routing on a real Redis, and the worker command."""

import uuid
from importlib.metadata import EntryPoints
from pathlib import Path

import pytest
import redis
from celery import signals
from pydantic import ValidationError

from service.cli import main
from service.jobs import factory
from service.jobs.context import JobContext
from service.registry.db import Database
from service.settings import Settings
from tests.thread_nice import in_a_thread, linux_only, nice_with_room_for
from worker import signals as worker_signals
from worker.celery_app import celery_config, create_celery
from worker.runner import CeleryRunner
from worker.settings import CelerySettings


def test_long_job_settings_keep_redis_from_redelivering_a_running_job() -> None:
    settings = CelerySettings(broker_url="redis://x/0", job_time_limit_seconds=7200)
    config = celery_config(settings)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    soft, hard = config["task_soft_time_limit"], config["task_time_limit"]
    for options in ("broker_transport_options", "result_backend_transport_options"):
        assert config[options]["visibility_timeout"] > hard > soft == 7200
    assert config["task_ignore_result"]


def test_a_visibility_timeout_shorter_than_a_job_is_refused() -> None:
    with pytest.raises(ValidationError, match="visibility_timeout_seconds"):
        CelerySettings(job_time_limit_seconds=3600, visibility_timeout_seconds=3000)


def test_celery_fields_come_from_the_environment_around_the_service_settings(
    monkeypatch,
) -> None:
    monkeypatch.setenv("LISTSERVE_TRAINING_QUEUE", "gpu-training")
    service = Settings(broker_url="redis://x/0", admin_token="secret", max_attempts=5)
    settings = CelerySettings.extend(service)
    assert settings.training_queue == "gpu-training"
    assert settings.max_attempts == 5 and settings.admin_token.get_secret_value() == "secret"
    assert CelerySettings.extend(settings) is settings


def test_training_messages_land_only_in_the_training_queue(
    tmp_path: Path, shared_redis: str
) -> None:
    prefix = f"lstest-{uuid.uuid4().hex[:12]}:"
    settings = CelerySettings(
        broker_url=shared_redis,
        broker_key_prefix=prefix,
        database_url="sqlite://",
        store=tmp_path / "store",
    )
    database = Database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    database.migrate()
    context = JobContext.from_settings(settings, database, backbone=lambda: None)
    runner = CeleryRunner(settings, context)
    client = redis.Redis.from_url(shared_redis)
    try:
        runner.submit("job_not_in_the_registry")
        assert client.llen(f"{prefix}training") == 1
        assert client.llen(f"{prefix}quick") == 0
        assert not client.exists("training")  # nothing outside the prefix
        describe = runner.describe()
        assert describe["kind"] == "celery" and describe["queue"] == "training"
        assert describe["broker_error"] is None
    finally:
        runner.stop()
        database.dispose()
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


def test_the_broker_password_never_shows(tmp_path: Path) -> None:
    settings = CelerySettings(broker_url="redis://:hunter2@127.0.0.1:1/0", store=tmp_path)
    database = Database("sqlite://")
    runner = CeleryRunner(settings, JobContext.from_settings(settings, database, lambda: None))
    assert "hunter2" not in str(runner.describe())


def test_a_broker_url_picks_the_celery_runner_by_its_entry_point(tmp_path: Path) -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", store=tmp_path)
    database = Database("sqlite://")
    context = JobContext.from_settings(settings, database, lambda: None)
    runner = factory.default_runner(settings, context)
    try:
        assert isinstance(runner, CeleryRunner)
    finally:
        runner.stop()
        database.dispose()


def test_a_broker_url_without_the_celery_runner_is_a_clear_error(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(factory, "entry_points", lambda **_: EntryPoints(()))
    settings = Settings(broker_url="redis://127.0.0.1:1/0", store=tmp_path)
    context = JobContext.from_settings(settings, Database("sqlite://"), lambda: None)
    with pytest.raises(RuntimeError, match=r"the Celery runner .* is not available"):
        factory.default_runner(settings, context)


def test_the_worker_command_needs_a_broker(monkeypatch) -> None:
    monkeypatch.delenv("LISTSERVE_BROKER_URL", raising=False)
    with pytest.raises(SystemExit, match="LISTSERVE_BROKER_URL is not set"):
        main(["worker"])
    with pytest.raises(RuntimeError, match="LISTSERVE_BROKER_URL"):
        create_celery(CelerySettings())


@linux_only
def test_a_starting_worker_lowers_its_priority_before_its_pool_forks(monkeypatch) -> None:
    """Celery sends `worker_init` in the main process before the pool starts, so the pool's
    children (or, solo, the main thread) train at the API's model threads' priority."""
    worker_signals.connect()  # what the worker's app does when it is created
    base = nice_with_room_for(2)
    monkeypatch.setenv("LISTSERVE_COMPUTE_NICE", "2")
    _, nice = in_a_thread(lambda: signals.worker_init.send(sender=None))
    assert nice == base + 2
