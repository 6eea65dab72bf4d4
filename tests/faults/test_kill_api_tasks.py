"""SIGKILL of a real `listserve serve` during `POST /tasks`: before its transaction commits,
between the commit and the answer, and after the 202 while its job trains.

No hook in the service decides when to die. Each kill point is reached with a real technique
and proved from outside before the kill: a PostgreSQL table lock the request's transaction
waits on (seen in `pg_locks`), a broker frozen with SIGSTOP that the request's publish waits on
(its task row already committed), and the job's own progress in the registry.
"""

import threading
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select, update

from service.registry.db import Database
from service.registry.models import AdapterVersion, Job, JobEvent, Task, TaskData
from tests.faults.conftest import ServerProcess, libpq, pg_database, registry
from tests.service.conftest import (
    FAST_TRAINING,
    SLOW_TRAINING,
    service_settings,
    task_body,
    wait_until,
)
from tests.worker.conftest import FAST_JOBS, PrivateRedis, celery_harness, free_port


class Request(threading.Thread):
    """One `POST /tasks` sent from its own thread, so the test can kill the server meanwhile."""

    def __init__(self, url: str, headers: dict, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.body = url, headers, body
        self.response: httpx.Response | None = None
        self.error: httpx.TransportError | None = None

    def run(self) -> None:
        try:
            self.response = httpx.post(
                f"{self.url}/tasks", json=self.body, headers=self.headers, timeout=60
            )
        except httpx.TransportError as error:
            self.error = error

    def outcome(self) -> httpx.TransportError:
        """The transport error the client saw; fails if it got an answer instead."""
        self.join(30)
        assert not self.is_alive(), "the client hung after the server died"
        assert self.response is None, f"the client was answered: {self.response.text}"
        return self.error


def count(database: Database, model: type) -> int:
    """Rows of a registry table, committed ones only."""
    with database.read_session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.slow
def test_killed_before_commit_leaves_no_trace_of_the_task(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """The test holds `LOCK TABLE job_events IN EXCLUSIVE MODE`; the request's transaction
    inserts the task, its data and its job, then waits to insert the job's first event. Once
    `pg_locks` shows it waiting there, holding row locks on those three tables, the server is
    SIGKILLed. The unacknowledged task must not exist at all: no task, data, job or event."""
    with pg_database() as url, registry(url) as database:
        settings = service_settings(tmp_path, tiny_roberta_path, port=free_port(), database_url=url)
        server = ServerProcess(settings, tmp_path / "server.log")
        try:
            api = server.wait_ready()
            tenant = api.tenant()
            with (
                psycopg.connect(libpq(url)) as lock,
                psycopg.connect(libpq(url), autocommit=True) as watch,
            ):
                lock.execute("LOCK TABLE job_events IN EXCLUSIVE MODE")
                request = Request(server.url, tenant, task_body())
                request.start()

                def blocked_writer() -> tuple[int, set[str]] | None:
                    row = watch.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO job_events%'"
                    ).fetchone()
                    if row is None:
                        return None
                    held = watch.execute(
                        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE l.pid = %s AND l.granted AND l.mode = 'RowExclusiveLock'",
                        row,
                    ).fetchall()
                    return row[0], {name for (name,) in held}

                backend, written = wait_until(blocked_writer, 30, "the insert to block")
                assert {"tasks", "task_data", "jobs"} <= written
                server.kill()
                request.outcome()
                lock.rollback()  # the orphaned backend now finds its client gone and aborts

                def backend_gone() -> bool:
                    query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
                    return watch.execute(query, (backend,)).fetchone() is None

                wait_until(backend_gone, 30, "the dead server's backend to end")
            for model in (Task, TaskData, Job, JobEvent):
                assert count(database, model) == 0, model.__tablename__
        finally:
            server.stop()


@pytest.mark.slow
def test_acknowledged_tasks_survive_a_kill_and_train_after_restart(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """Two tasks get their 202; one is training (its progress is in the registry), the other is
    queued behind it. SIGKILL, then a restart on the same registry and store: the training job's
    lease goes stale and it runs again, the queued one is picked up, and both tasks end `ready`
    with exactly one adapter each; nothing is left `queued` or `running`."""
    settings = service_settings(
        tmp_path, tiny_roberta_path, port=free_port(), max_active_jobs_per_tenant=5, **FAST_JOBS
    )
    server = ServerProcess(settings, tmp_path / "server.log")
    try:
        api = server.wait_ready()
        tenant = api.tenant()
        running = api.create_task(tenant, name="running", hyperparameters=SLOW_TRAINING)
        queued = api.create_task(tenant, name="queued")

        def training() -> bool:
            job = api.client.get(f"/admin/jobs/{running['job']['id']}", headers=api.admin).json()
            return job["status"] == "running" and bool(job["progress"])

        wait_until(training, 60, "the first job to be training")
        server.kill()
    finally:
        server.stop()

    with registry(settings.database_url) as database:
        with database.read_session() as session:
            statuses = dict(session.execute(select(Job.task_id, Job.status)).all())
        assert statuses == {running["id"]: "running", queued["id"]: "queued"}
        with database.session() as session:  # only the recovery matters now: a short retrain
            session.execute(
                update(Task).where(Task.id == running["id"]).values(hyperparameters=FAST_TRAINING)
            )

    restarted = ServerProcess(settings, tmp_path / "restarted.log")
    try:
        api = restarted.wait_ready()
        for task in (running, queued):
            assert api.wait_task(tenant, task["id"], timeout=90)["status"] == "ready"
        jobs = {
            job["task_id"]: job
            for job in api.client.get("/admin/jobs", headers=api.admin).json()["data"]
        }
        assert {task_id: job["status"] for task_id, job in jobs.items()} == {
            running["id"]: "succeeded",
            queued["id"]: "succeeded",
        }
        assert jobs[running["id"]]["attempts"] == 2 and jobs[queued["id"]]["attempts"] == 1
        events = api.client.get(
            f"/admin/jobs/{running['job']['id']}/events", params={"limit": 500}, headers=api.admin
        ).json()["data"]
        assert "lease_expired" in [event["kind"] for event in events]
        for task in (running, queued):
            assert api.predict(tenant, task["id"], ["a great film"])["adapter_version"] == 1
    finally:
        restarted.stop()
    with registry(settings.database_url) as database:
        assert count(database, AdapterVersion) == 2
    assert len(list(Path(settings.store).rglob("adapter.safetensors"))) == 2


@pytest.mark.slow
def test_killed_between_commit_and_answer_the_task_is_whole_and_trains(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """With Celery workers, the API answers only after publishing the job. The broker (a private
    redis-server) is frozen with SIGSTOP, so the request commits the task and then waits on the
    publish; once the task and its job are in the registry, never marked enqueued, the API is
    SIGKILLed. The client got no answer, but the task is complete, and after an API restart its
    job is sent by the start-up sweep and trained once to `ready`."""
    broker = PrivateRedis()
    broker.start()
    try:
        with (
            celery_harness(tmp_path, tiny_roberta_path, broker.url, port=free_port()) as harness,
            registry(harness.settings.database_url) as database,
        ):
            worker = harness.start_worker("w")
            server = ServerProcess(harness.settings, tmp_path / "server.log")
            try:
                api = server.wait_ready()
                worker.wait_ready()
                tenant = api.tenant()
                with broker.frozen():
                    request = Request(server.url, tenant, task_body(name="in-flight"))
                    request.start()

                    def committed() -> Job | None:
                        with database.read_session() as session:
                            return session.scalar(select(Job))

                    job = wait_until(committed, 30, "the task to be committed")
                    assert job.enqueued_at is None  # the request is still publishing
                    server.kill()
                    request.outcome()
            finally:
                server.stop()
            assert count(database, TaskData) == 1 and count(database, Task) == 1

            restarted = ServerProcess(harness.settings, tmp_path / "restarted.log")
            try:
                api = restarted.wait_ready()
                task = api.wait_task(tenant, job.task_id, timeout=90)
                assert task["status"] == "ready" and task["adapter"]["version"] == 1
                done = api.client.get(f"/admin/jobs/{job.id}", headers=api.admin).json()
                assert done["status"] == "succeeded" and done["attempts"] == 1
                assert api.predict(tenant, job.task_id, ["a dull film"])["adapter_version"] == 1
            finally:
                restarted.stop()
            assert count(database, AdapterVersion) == 1
    finally:
        broker.stop()
