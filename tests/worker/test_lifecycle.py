"""The job lifecycle over HTTP, run the same way by both runners: the in-process one (no broker)
and a real `listserve worker` process on Redis. Train then predict, progress events that arrive
in order while the job runs, and cancel mid-training."""

import os
from pathlib import Path

import pytest

from service.registry.ids import new_id
from service.registry.jobs import add_event
from service.registry.models import Job, utcnow
from service.registry.states import JOB_QUEUED
from tests.service.conftest import (
    FAST_TRAINING,
    SLOW_TRAINING,
    running_api,
    service_settings,
    wait_until,
)
from tests.worker.conftest import FAST_JOBS, celery_stack, job_detail, job_events, owner_pid

PHASES = ["teacher", "distill", "reweight", "labeled"]
TRAINING = {
    "budget": "fast",
    "teacher_steps": 30,
    "sessions": 1,
    "unlabeled_steps": 8,
    "labeled_steps": 4,
}
TEXTS = ["a great and fun movie", "a terrible boring film", "the plot was okay"]


@pytest.fixture(scope="module", params=["in-process", "celery"])
def api(request: pytest.FixtureRequest, tmp_path_factory, tiny_roberta_path: Path):
    """One running stack per runner, shared by this module's tests (each uses its own tenant)."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "in-process":
        with running_api(service_settings(root, tiny_roberta_path, **FAST_JOBS)) as running:
            yield running
    else:
        broker = request.getfixturevalue("shared_redis")
        with celery_stack(root, tiny_roberta_path, broker, via_cli=True) as (running, _):
            yield running


def test_a_submitted_task_is_trained_by_the_runner_then_served(api) -> None:
    tenant = api.tenant("lifecycle")
    created = api.create_task(tenant, hyperparameters=TRAINING)
    job_id = created["job"]["id"]
    seen: list[dict] = []  # what polling showed while the job ran, asking only for newer events

    def ended() -> bool:
        seen.extend(job_events(api, job_id, after=seen[-1]["id"] if seen else None))
        return bool(seen) and seen[-1]["kind"] in ("succeeded", "failed", "cancelled")

    wait_until(ended, 120, f"job {job_id} to end")
    assert seen == job_events(api, job_id)  # nothing was inserted behind what we had seen
    kinds = [event["kind"] for event in seen]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "succeeded", kinds
    assert [e["id"] for e in seen] == sorted({e["id"] for e in seen})

    progress = [event["data"] for event in seen if event["kind"] == "progress"]
    assert len(progress) >= len(PHASES)
    order = [(p["session"], PHASES.index(p["phase"]), p["step"]) for p in progress]
    assert order == sorted(order)
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    runner = api.client.get("/info").json()["runner"]["kind"]
    trainer = owner_pid(seen[1]["data"]["owner"])
    if runner == "celery":
        assert trainer != os.getpid()  # trained in the worker process, not in the API
    else:
        assert runner == "in-process" and trainer == os.getpid()

    task = api.wait_task(tenant, created["id"])
    assert task["status"] == "ready" and task["adapter"]["version"] == 1
    job = job_detail(api, job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["error"] is None
    result = api.predict(tenant, created["id"], TEXTS)
    assert result["adapter_version"] == 1 and len(result["predictions"]) == len(TEXTS)
    assert all(p["label"] in ("positive", "negative") for p in result["predictions"])


def test_cancel_during_training_ends_cancelled_without_an_adapter(api) -> None:
    tenant = api.tenant("cancel")
    created = api.create_task(tenant, hyperparameters=SLOW_TRAINING)
    job_id = created["job"]["id"]
    wait_until(lambda: (job_detail(api, job_id)["progress"] or {}).get("step"), 120, "training")

    response = api.client.post(f"/admin/jobs/{job_id}/cancel", headers=api.admin)
    assert response.status_code == 202
    job = api.wait_job(job_id, ("cancelled",), timeout=60)
    assert job["finished_at"] is not None and job["error"] is None
    kinds = [event["kind"] for event in job_events(api, job_id)]
    assert "cancel_requested" in kinds and kinds[-1] == "cancelled"
    assert "succeeded" not in kinds

    task = api.client.get(f"/tasks/{created['id']}", headers=tenant).json()
    assert task["status"] == "cancelled" and task["adapter"] is None
    store = Path(api.services.settings.store)
    assert not [path for path in store.rglob("*") if created["id"] in str(path)]
    predicted = api.client.post(f"/predict/{created['id']}", json={"inputs": ["x"]}, headers=tenant)
    assert predicted.status_code == 409


def test_a_new_version_is_served_on_the_next_request_without_any_notice(api) -> None:
    """Predict looks up the task's newest version in the registry on every request, so a
    version registered by any process is served at once, and the old one never again."""
    tenant = api.tenant("versions")
    task = api.ready_task(tenant, hyperparameters=FAST_TRAINING)
    assert api.predict(tenant, task["id"], TEXTS)["adapter_version"] == 1
    tenant_id = job_detail(api, task["job"]["id"])["tenant_id"]
    with api.services.database.session() as session:  # a retraining job for the same task
        retrain = Job(
            id=new_id("job"),
            task_id=task["id"],
            tenant_id=tenant_id,
            status=JOB_QUEUED,
            attempts=0,
            max_attempts=3,
            cancel_requested=False,
            created_at=utcnow(),
        )
        session.add(retrain)
        session.flush()
        add_event(session, retrain.id, "queued", {"task_id": task["id"]})
    api.services.runner.submit(retrain.id)
    api.wait_job(retrain.id, ("succeeded",), timeout=120)
    for _ in range(3):
        assert api.predict(tenant, task["id"], TEXTS)["adapter_version"] == 2
