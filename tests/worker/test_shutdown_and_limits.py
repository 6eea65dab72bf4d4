"""How a job ends when its worker stops on purpose: the prefork pool's time limit, and a warm
shutdown (SIGTERM) of a solo worker, which hands the job back to the broker for another one."""

import json
from pathlib import Path

from tests.service.conftest import SLOW_TRAINING, wait_until
from tests.worker.conftest import celery_harness, job_detail, job_events, owner_pid


def log_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def started_pids(api, job_id: str) -> list[int]:
    return [
        owner_pid(e["data"]["owner"]) for e in job_events(api, job_id) if e["kind"] == "started"
    ]


def test_prefork_trains_in_the_child_and_the_soft_time_limit_fails_the_job(
    tmp_path: Path, tiny_roberta_path: Path, shared_redis: str
) -> None:
    # The lease outlives any stall of a loaded 2-core machine: this test is about the time
    # limit, and a lease that expired under load would hand the job to a second attempt.
    limits = {
        "job_time_limit_seconds": 4.0,
        "job_kill_grace_seconds": 30.0,
        "lease_seconds": 20.0,
    }
    with celery_harness(tmp_path, tiny_roberta_path, shared_redis, **limits) as harness:
        worker = harness.start_worker("prefork", via_cli=True, pool="prefork")
        with harness.api() as api:
            worker.wait_ready()
            tenant = api.tenant()
            task = api.create_task(tenant, hyperparameters=SLOW_TRAINING)
            job = api.wait_job(task["job"]["id"], ("failed", "succeeded"), timeout=120)

            assert job["status"] == "failed" and job["attempts"] == 1
            assert job["error"]["code"] == "training_error", job
            assert job["error"]["message"].startswith("training failed: SoftTimeLimitExceeded")
            assert api.client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] == (
                "failed"
            )
            # The job (and with it the backbone, loaded on its first use) ran in the pool
            # child; the forking parent never loaded one.
            (child,) = started_pids(api, task["job"]["id"])
            assert child != worker.pid
            loaded = [r for r in log_records(worker.log()) if r["message"] == "backbone loaded"]
            assert all(record["pid"] == child for record in loaded)


def test_a_warm_shutdown_hands_the_running_job_to_another_worker(
    tmp_path: Path, tiny_roberta_path: Path, shared_redis: str
) -> None:
    with celery_harness(tmp_path, tiny_roberta_path, shared_redis) as harness:
        workers = [harness.start_worker(name) for name in ("one", "two")]
        with harness.api() as api:
            for worker in workers:
                worker.wait_ready()
            tenant = api.tenant()
            task = api.create_task(tenant, hyperparameters=SLOW_TRAINING)
            job_id = task["job"]["id"]
            wait_until(lambda: (job_detail(api, job_id)["progress"] or {}).get("step"), 120, "run")
            (first,) = [w for w in workers if w.pid in started_pids(api, job_id)]
            (second,) = [w for w in workers if w is not first]

            first.stop()  # SIGTERM: stop at the next step, release the job, requeue its message
            assert first.process.returncode == 0
            kinds = [event["kind"] for event in job_events(api, job_id)]
            assert "released" in kinds and "failed" not in kinds
            # No sweep resends it (it was handed over moments ago): the requeued message does.
            wait_until(lambda: len(started_pids(api, job_id)) == 2, 120, "the other worker")
            assert started_pids(api, job_id) == [first.pid, second.pid]
            assert job_detail(api, job_id)["attempts"] == 1  # the released run did not count
            api.client.post(f"/admin/jobs/{job_id}/cancel", headers=api.admin)
            assert api.wait_job(job_id, ("cancelled",), timeout=60)["attempts"] == 1
