"""The PostgreSQL cluster stopped and started under a real `listserve serve` serving load."""

import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import Load, Outcome, ServerProcess, pg_database, postgres_stopped
from tests.service.conftest import service_settings, task_body, wait_until
from tests.worker.conftest import FAST_JOBS, free_port

TEXTS = ["a great and fun movie", "a terrible boring film"]
ANSWER_SECONDS = 10.0  # an outage must be a quick answer, never a hung request


def during(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    """Requests sent and answered entirely inside [start, end]."""
    return [o for o in outcomes if o.started >= start and o.started + o.seconds <= end]


def accepted(outcomes: list[Outcome], status: int) -> list[Outcome]:
    return [o for o in outcomes if o.status == status]


@pytest.mark.slow
def test_a_postgres_restart_is_503s_then_full_recovery_without_restarting_the_api(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """Predictions and task submissions run throughout; the cluster is stopped (fast shutdown
    cuts every session) until both kinds of request have been refused, then started. Every
    answer must be a success or a 503 `database_unavailable` in the usual error body, quickly,
    never a 500 or a hang. Afterwards the same API process serves again: each acknowledged task
    exists and trains to `ready`, no job is left `queued` or `running`, and predictions equal
    those before the outage."""
    with pg_database() as url:
        settings = service_settings(
            tmp_path,
            tiny_roberta_path,
            port=free_port(),
            database_url=url,
            predict_rate_per_second=1e4,
            predict_burst=10**4,
            max_active_jobs_per_tenant=1000,
            max_tasks_per_tenant=1000,
            **FAST_JOBS,
        )
        server = ServerProcess(settings, tmp_path / "server.log")
        try:
            api = server.wait_ready()
            tenant = api.tenant()
            served = api.ready_task(tenant)["id"]
            before = api.predict(tenant, served, TEXTS)

            def predict(client: httpx.Client) -> httpx.Response:
                return client.post(f"/predict/{served}", json={"inputs": TEXTS}, headers=tenant)

            def submit(client: httpx.Client) -> httpx.Response:
                return client.post("/tasks", json=task_body(), headers=tenant)

            predictions = Load(predict, server.url, clients=2, pause=0.05)
            submissions = Load(submit, server.url, clients=1, pause=0.5)

            def both_saw(predicted: int, submitted: int, since: float) -> bool:
                """At least two answers of each kind with these statuses, sent since then."""
                now = time.monotonic()
                return all(
                    len(accepted(during(load.seen(), since, now), status)) >= 2
                    for load, status in ((predictions, predicted), (submissions, submitted))
                )

            with predictions, submissions:
                wait_until(lambda: both_saw(200, 202, 0.0), 60, "load before the outage")
                with postgres_stopped():
                    down = time.monotonic()
                    wait_until(lambda: both_saw(503, 503, down), 30, "refusals in the outage")
                    up = time.monotonic()
                recovered = time.monotonic()
                wait_until(lambda: both_saw(200, 202, recovered), 60, "recovery")
            assert server.process.poll() is None  # the same process recovered by itself

            for load, ok in ((predictions, 200), (submissions, 202)):
                for outcome in load.seen():
                    assert outcome.error is None, outcome
                    assert outcome.seconds < ANSWER_SECONDS, outcome
                    if outcome.status != ok:
                        assert outcome.status == 503, outcome
                        assert outcome.body["error"]["type"] == "database_unavailable"
                        assert "database" in outcome.body["error"]["message"]
                assert not accepted(during(load.seen(), down, up), ok)

            acknowledged = [o.body["id"] for o in accepted(submissions.seen(), 202)]
            for task_id in acknowledged:
                assert api.wait_task(tenant, task_id, timeout=120)["status"] == "ready"
            for status in ("queued", "running"):
                listed = api.client.get("/admin/jobs", params={"status": status}, headers=api.admin)
                assert listed.json()["data"] == [], status
            assert api.predict(tenant, served, TEXTS) == before
        finally:
            server.stop()
