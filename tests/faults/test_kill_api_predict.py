"""SIGKILL of a real `listserve serve` while clients are waiting on predictions."""

import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import Load, Outcome, ServerProcess
from tests.service.conftest import service_settings
from tests.worker.conftest import free_port

TEXTS = ["a great and fun movie", "a terrible boring film", "the plot was okay"]
CLIENTS = 3


def same_predictions(got: list[dict], want: list[dict]) -> bool:
    """Labels equal and scores within float noise (a batch may pad rows differently)."""
    return all(
        g["label"] == w["label"] and g["scores"] == pytest.approx(w["scores"], abs=1e-5)
        for g, w in zip(got, want, strict=True)
    )


@pytest.mark.slow
def test_a_killed_api_never_answers_wrong_and_serves_the_same_after_restart(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """Clients have predictions in flight when the process dies (it is SIGSTOPped first, so
    every client is provably waiting on an answer, then SIGKILLed). Each client must see a
    correct answer or a transport error, never a wrong answer or a 5xx; after a restart on the
    same registry and store, the tasks and adapters are all there (cold-loaded, checksummed)
    and the answers are identical to those before the crash."""
    settings = service_settings(
        tmp_path,
        tiny_roberta_path,
        port=free_port(),
        predict_rate_per_second=1e4,
        predict_burst=10**4,
    )
    server = ServerProcess(settings, tmp_path / "server.log")
    try:
        api = server.wait_ready()
        tenant = api.tenant()
        tasks = [
            api.ready_task(tenant)["id"],
            api.ready_task(tenant, name="b", label_words={"positive": "good", "negative": "bad"})[
                "id"
            ],
        ]
        before = {task_id: api.predict(tenant, task_id, TEXTS) for task_id in tasks}
        listed = api.client.get("/tasks", headers=tenant).json()

        def predict(client: httpx.Client) -> httpx.Response:
            task_id = random.choice(tasks)
            return client.post(f"/predict/{task_id}", json={"inputs": TEXTS}, headers=tenant)

        with Load(predict, server.url, clients=CLIENTS) as load:
            load.wait_for(lambda seen: len(seen) >= 20, 60, "predictions under load")
            server.process.send_signal(signal.SIGSTOP)
            time.sleep(0.5)  # every client has now sent a request the server cannot answer
            killed_at = time.monotonic()
            server.kill()

            def in_flight(seen: list[Outcome]) -> list[Outcome]:
                return [o for o in seen if o.started < killed_at and o.error is not None]

            load.wait_for(lambda seen: len(in_flight(seen)) >= CLIENTS, 30, "clients to fail")
        outcomes = load.seen()
    finally:
        server.stop()

    assert len(in_flight(outcomes)) == CLIENTS  # each client lost exactly its pending request
    answered = [o for o in outcomes if o.status is not None]
    assert len(answered) >= 20
    for outcome in answered:
        assert outcome.status == 200, outcome
        assert same_predictions(
            outcome.body["predictions"], before[outcome.body["task"]]["predictions"]
        )

    restarted = ServerProcess(settings, tmp_path / "restarted.log")
    try:
        api = restarted.wait_ready()
        assert api.client.get("/tasks", headers=tenant).json() == listed
        for task_id in tasks:
            assert api.predict(tenant, task_id, TEXTS) == before[task_id]
        cache = api.client.get("/info").json()["adapter_cache"]
        assert cache["loads"] == len(tasks) and cache["entries"] == len(tasks)
        jobs = api.client.get("/admin/jobs", headers=api.admin).json()["data"]
        assert [job["status"] for job in jobs] == ["succeeded"] * len(tasks)
    finally:
        restarted.stop()
