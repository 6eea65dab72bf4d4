"""Real faults against real processes: workers SIGKILLed mid-job, duplicate messages, and the
broker going away (a private redis-server this test stops and starts)."""

import time
from pathlib import Path

from sqlalchemy import update

from service.registry.models import Job, Task
from tests.service.conftest import SLOW_TRAINING, task_body, wait_until
from tests.worker.conftest import (
    PrivateRedis,
    celery_harness,
    job_detail,
    job_events,
    owner_pid,
)
from worker.celery_app import TRAIN_TASK

QUICK_TRAINING = {
    "budget": "fast",
    "teacher_steps": 5,
    "sessions": 1,
    "unlabeled_steps": 3,
    "labeled_steps": 2,
}


def dropped_in_log(worker, message_id: str) -> bool:
    """Celery logs each task's return value; ours is the job outcome."""
    return any(
        f"[{message_id}] succeeded" in line and "'dropped'" in line
        for line in worker.log().splitlines()
    )


def trainer_pid(api, job_id: str) -> int:
    started = [e for e in job_events(api, job_id) if e["kind"] == "started"]
    return owner_pid(started[-1]["data"]["owner"])


def test_killed_workers_jobs_are_recovered_once_or_fail_at_the_cap(
    tmp_path: Path, tiny_roberta_path: Path, shared_redis: str
) -> None:
    with celery_harness(tmp_path, tiny_roberta_path, shared_redis) as harness:
        workers = [harness.start_worker(name) for name in ("a", "b", "c")]
        with harness.api() as api:
            for worker in workers:
                worker.wait_ready()
            tenant = api.tenant()
            retried = api.create_task(tenant, name="retried", hyperparameters=SLOW_TRAINING)
            capped = api.create_task(tenant, name="capped", hyperparameters=SLOW_TRAINING)
            job_ids = [retried["job"]["id"], capped["job"]["id"]]

            def both_training() -> list[int] | None:
                jobs = [job_detail(api, job_id) for job_id in job_ids]
                if all(job["status"] == "running" and job["progress"] for job in jobs):
                    return [trainer_pid(api, job_id) for job_id in job_ids]
                return None

            busy_pids = wait_until(both_training, 120, "both jobs to be training")
            busy = [w for w in workers if w.pid in busy_pids]
            (idle,) = [w for w in workers if w.pid not in busy_pids]
            assert len(busy) == 2
            # The second job may run once only: its worker's death uses up its attempts.
            with api.services.database.session() as session:
                session.execute(update(Job).where(Job.id == job_ids[1]).values(max_attempts=1))

            # A duplicate message while a live worker holds the lease is dropped.
            runner = api.services.runner
            duplicate = runner.app.send_task(
                TRAIN_TASK, args=[job_ids[0]], queue=runner.settings.training_queue
            )
            wait_until(lambda: dropped_in_log(idle, duplicate.id), 60, "duplicate dropped")
            assert job_detail(api, job_ids[0])["attempts"] == 1

            for worker in busy:
                worker.kill()
            # Only the recovery matters from here: let the retry train a short schedule.
            with api.services.database.session() as session:
                session.execute(
                    update(Task)
                    .where(Task.id == retried["id"])
                    .values(hyperparameters=QUICK_TRAINING)
                )
            # The idle worker survives; the sweep re-enqueues both once their leases go stale.
            done = api.wait_job(job_ids[0], ("succeeded", "failed"), timeout=120)
            failed = api.wait_job(job_ids[1], ("succeeded", "failed"), timeout=120)

            assert done["status"] == "succeeded" and done["attempts"] == 2, done
            kinds = [event["kind"] for event in job_events(api, job_ids[0])]
            assert kinds.count("started") == 2 and "lease_expired" in kinds
            task = api.wait_task(tenant, retried["id"])
            assert task["status"] == "ready" and task["adapter"]["version"] == 1
            store = Path(harness.settings.store)
            assert len(list(store.rglob(f"*{retried['id']}*/**/adapter.safetensors"))) == 1

            assert failed["status"] == "failed"
            assert failed["error"] == {
                "type": "service_error",
                "code": "attempts_exhausted",
                "message": "gave up after 1 attempts (limit 1)",
            }
            capped_task = api.client.get(f"/tasks/{capped['id']}", headers=tenant).json()
            assert capped_task["status"] == "failed" and capped_task["adapter"] is None

            # A late copy of a finished job's message (say, Redis re-delivering the dead
            # worker's one) is dropped too, and changes nothing.
            late = runner.app.send_task(
                TRAIN_TASK, args=[job_ids[0]], queue=runner.settings.training_queue
            )
            wait_until(lambda: dropped_in_log(idle, late.id), 60, "late copy dropped")
            assert job_detail(api, job_ids[0]) == done


def test_broker_down_refuses_submissions_keeps_predicting_and_recovers(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    broker = PrivateRedis()
    broker.start()
    try:
        with celery_harness(tmp_path, tiny_roberta_path, broker.url) as harness:
            worker = harness.start_worker("w")
            with harness.api() as api:
                worker.wait_ready()
                tenant = api.tenant()
                before = api.ready_task(tenant, hyperparameters=QUICK_TRAINING)

                broker.stop()
                started = time.monotonic()
                response = api.client.post(
                    "/tasks",
                    json=task_body(name="later", hyperparameters=QUICK_TRAINING),
                    headers=tenant,
                )
                assert response.status_code == 503, response.text
                assert time.monotonic() - started < 10  # a quick answer, not a hung request
                error = response.json()["error"]
                assert error["type"] == "runner_unavailable"
                assert "broker is unreachable" in error["message"]
                later_job = error["details"]["job_id"]
                assert job_detail(api, later_job)["status"] == "queued"
                assert api.client.get("/info").json()["runner"]["broker_error"]
                for _ in range(3):  # serving needs no broker
                    result = api.predict(tenant, before["id"], ["a great film"])
                    assert result["adapter_version"] == 1
                assert api.client.get("/ready").status_code == 200

                broker.start()  # empty: the job's message was never sent
                later = api.wait_task(tenant, error["details"]["task_id"], timeout=120)
                assert later["status"] == "ready", later
                assert job_detail(api, later_job)["attempts"] == 1
                api.predict(tenant, later["id"], ["a dull film"])
                assert api.client.get("/info").json()["runner"]["broker_error"] is None
    finally:
        broker.stop()
