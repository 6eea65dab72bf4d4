"""End to end over HTTP: tenant -> task -> training -> predictions, on SQLite and PostgreSQL;
then a restart over the same database and store; deletion; and the operations endpoints."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from list_core.inference import Row, predict_mixed
from service.api.app import create_app
from service.registry import adapters
from tests.service.conftest import (
    ADMIN_TOKEN,
    SLOW_TRAINING,
    pg_schema,
    service_settings,
    task_body,
    wait_until,
)

TEXTS = ["a great and fun movie", "a terrible boring film", "the plot was okay"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_create_train_and_predict(make_api, backend: str) -> None:
    overrides = {}
    with pg_schema() as url:
        if backend == "postgresql":
            overrides["database_url"] = url
        with make_api(**overrides) as api:
            tenant = api.tenant()
            created = api.create_task(tenant)
            assert created["status"] == "training" and created["adapter"] is None
            assert created["job"]["status"] in ("queued", "running")
            assert created["head_kind"] == "mlm"
            task = api.wait_task(tenant, created["id"])
            assert task["status"] == "ready", task
            assert task["adapter"]["version"] == 1
            assert task["adapter"]["metrics"]["steps"] == 10
            assert task["job"]["status"] == "succeeded" and task["job"]["progress"]["fraction"] == 1
            result = api.predict(tenant, task["id"], TEXTS)
    assert result["task"] == task["id"] and result["adapter_version"] == 1
    assert len(result["predictions"]) == len(TEXTS)
    for prediction in result["predictions"]:
        assert set(prediction["scores"]) == {"positive", "negative"}
        assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["score"] == max(prediction["scores"].values())
        assert prediction["label"] == max(prediction["scores"], key=prediction["scores"].get)


def test_restart_keeps_tasks_and_adapters_and_predictions(make_api, tmp_path: Path) -> None:
    with make_api(tmp_path) as api:
        tenant = api.tenant()
        task = api.ready_task(tenant)
        pair = api.ready_task(
            tenant,
            name="pairs",
            template="{text} ? {mask} , {text_b}",
            label_words={"positive": "good", "negative": "bad"},
            examples=[
                {"text": "great film", "text_b": "fun", "label": "positive"},
                {"text": "bad film", "text_b": "dull", "label": "negative"},
            ],
            unlabeled=[],
        )
        pair_inputs = [{"text": "nice plot", "text_b": "lovely"}]
        before = api.predict(tenant, task["id"], TEXTS)
        pair_before = api.predict(tenant, pair["id"], pair_inputs)
        listed = api.client.get("/tasks", headers=tenant).json()
    with make_api(tmp_path) as restarted:
        assert restarted.client.get("/tasks", headers=tenant).json() == listed
        assert restarted.predict(tenant, task["id"], TEXTS) == before
        assert restarted.predict(tenant, pair["id"], pair_inputs) == pair_before
        cache = restarted.client.get("/info").json()["adapter_cache"]
        assert cache["loads"] == 2 and cache["entries"] == 2


def test_list_tasks_pages_newest_first(make_api) -> None:
    with make_api(max_active_jobs_per_tenant=5) as api:
        list_and_page(api)


def list_and_page(api) -> None:
    tenant = api.tenant()
    ids = [api.create_task(tenant, name=f"t{i}")["id"] for i in range(3)]
    first = api.client.get("/tasks", params={"limit": 2}, headers=tenant).json()
    assert [t["id"] for t in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = api.client.get(
        "/tasks", params={"limit": 2, "after": first["data"][-1]["id"]}, headers=tenant
    ).json()
    assert [t["id"] for t in rest["data"]] == ids[:1] and not rest["has_more"]
    bad = api.client.get("/tasks", params={"after": "tsk_unknown"}, headers=tenant)
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("after")
    for task_id in ids:
        api.wait_task(tenant, task_id)


def test_delete_removes_the_task_its_adapter_files_and_predictions(api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    api.predict(tenant, task["id"], TEXTS)
    task_dir = Path(api.services.settings.store).resolve() / task["id"]
    store_root = Path(api.services.settings.store)
    assert list(store_root.rglob("adapter.safetensors"))
    assert api.client.delete(f"/tasks/{task['id']}", headers=tenant).status_code == 204
    assert api.client.get(f"/tasks/{task['id']}", headers=tenant).status_code == 404
    predicted = api.client.post(f"/predict/{task['id']}", json={"inputs": ["x"]}, headers=tenant)
    assert predicted.status_code == 404
    assert api.client.delete(f"/tasks/{task['id']}", headers=tenant).status_code == 404
    assert not list(store_root.rglob("adapter.safetensors")) and not task_dir.exists()
    assert api.client.get("/tasks", headers=tenant).json()["data"] == []


def test_predict_answers_409_until_an_adapter_is_ready(api) -> None:
    tenant = api.tenant()
    task = api.create_task(tenant, hyperparameters=SLOW_TRAINING)
    response = api.client.post(f"/predict/{task['id']}", json={"inputs": ["x"]}, headers=tenant)
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "not_ready"
    job = api.client.post(f"/admin/jobs/{task['job']['id']}/cancel", headers=api.admin)
    assert job.status_code == 202
    api.wait_job(task["job"]["id"], ("cancelled",))


def test_health_ready_info_metrics_and_openapi(api) -> None:
    fresh = api.client.get("/info").json()
    assert fresh["adapter_cache"]["entries"] == 0 and fresh["batcher"]["requests"] == 0
    tenant = api.tenant()
    task = api.ready_task(tenant)
    api.predict(tenant, task["id"], TEXTS)
    api.predict(tenant, task["id"], TEXTS[:1])
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json()["ready"] is True
    info = api.client.get("/info").json()
    assert info["backbone"]["architecture"] == "RobertaModel"
    assert info["head_kind"] == "mlm" and info["runner"]["kind"] == "in-process"
    assert info["backbone_choice"]["reason"] == "set by LISTSERVE_BACKBONE"
    assert info["adapter_cache"]["entries"] == 1 and info["adapter_cache"]["hits"] >= 1
    metrics = api.client.get("/metrics").text
    assert (
        'listserve_http_requests_total{method="POST",route="/predict/{task_id}",status="200"}'
        in (metrics)
    )
    assert 'listserve_predictions_total{head_kind="mlm",method="list"}' in metrics
    assert "listserve_adapter_cache_hits_total" in metrics
    assert "listserve_http_request_seconds_bucket" in metrics
    schema = api.client.get("/openapi.json").json()
    for name, component in schema["components"]["schemas"].items():
        if name in ("HTTPValidationError", "ValidationError") or name.startswith("Body_"):
            continue
        assert component.get("examples"), f"schema {name} has no example"
    assert {"/tasks", "/tasks/{task_id}", "/predict/{task_id}", "/admin/jobs"} <= set(
        schema["paths"]
    )


def test_rows_waiting_for_a_cold_adapter_load_are_announced_to_the_batcher(
    api, monkeypatch
) -> None:
    """While a request's adapter loads, the batcher counts its rows as on their way (so a flush
    may wait for them); once they are submitted, or the load is over, they are not."""
    tenant = api.tenant()
    task = api.ready_task(tenant)  # trained, never predicted: its adapter is not cached yet
    cache = api.services.cache
    loading, release = threading.Event(), threading.Event()
    load = cache._loader

    def held_load(key):
        loading.set()
        release.wait(30)
        return load(key)

    monkeypatch.setattr(cache, "_loader", held_load)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(api.predict, tenant, task["id"], TEXTS)
        wait_until(loading.is_set, 30, "the cold load to start")
        during = api.client.get("/info").json()["batcher"]["incoming_rows"]
        release.set()
        result = answer.result(30)
    assert during == len(TEXTS)
    assert api.client.get("/info").json()["batcher"]["incoming_rows"] == 0
    assert len(result["predictions"]) == len(TEXTS)


def test_a_failed_start_up_stays_alive_not_ready_and_says_why(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    settings = service_settings(tmp_path, tmp_path / "no-such-model")
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services
        wait_until(lambda: "failed" in services.status, 30, "start-up to fail")
        ready = client.get("/ready")
        assert ready.status_code == 503 and "start-up failed" in ready.json()["detail"]
        assert client.get("/health").status_code == 200
        tenant_key = client.post(
            "/admin/tenants", json={"name": "a"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).json()["api_key"]
        response = client.post(
            "/tasks", json=task_body(), headers={"Authorization": f"Bearer {tenant_key}"}
        )
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"]["type"] == "not_ready"


def test_a_tampered_adapter_is_refused_not_served(make_api, tmp_path: Path) -> None:
    with make_api(tmp_path) as api:
        tenant = api.tenant()
        task = api.ready_task(tenant)
    weights = next(Path(tmp_path / "adapters").rglob("adapter.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with make_api(tmp_path) as api:
        response = api.client.post(f"/predict/{task['id']}", json={"inputs": ["x"]}, headers=tenant)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "adapter_unavailable"


def test_a_task_accepted_while_the_runner_is_down_trains_after_restart(
    make_api, tmp_path: Path
) -> None:
    with make_api(tmp_path) as api:
        tenant = api.tenant()
        api.services.runner.stop()
        response = api.client.post("/tasks", json=task_body(), headers=tenant)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["type"] == "runner_unavailable"
        task_id, job_id = error["details"]["task_id"], error["details"]["job_id"]
        job = api.client.get(f"/admin/jobs/{job_id}", headers=api.admin).json()
        assert job["status"] == "queued"
    with make_api(tmp_path) as restarted:  # the start-up sweep hands the queued job over
        assert restarted.wait_task(tenant, task_id)["status"] == "ready"


def test_an_int8_serving_twin_serves_adapters_trained_in_full_precision(make_api) -> None:
    with make_api(serving_precision="int8") as api:
        tenant = api.tenant()
        task = api.ready_task(tenant)
        served = api.predict(tenant, task["id"], TEXTS)["predictions"]
        info = api.client.get("/info").json()
        services = api.services
        with services.database.read_session() as session:
            version = adapters.latest_adapter(session, task["id"])
            full_precision = services.store.load(version.path, version.sha256, services.backbone)
    assert info["backbone"]["serving_precision"] == "int8"
    assert info["batcher"]["apply_mode"] == "gather"  # auto, for the eager forward int8 keeps
    assert services.serving is not services.backbone
    reference = predict_mixed(services.backbone, [Row(full_precision, text) for text in TEXTS])
    labels = full_precision.spec.labels
    for prediction, probabilities in zip(served, reference, strict=True):
        for label, probability in zip(labels, probabilities, strict=True):
            assert prediction["scores"][label] == pytest.approx(probability, abs=0.05)


def test_an_unknown_serving_precision_is_refused_at_start_up_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="serving_precision"):
        service_settings(tmp_path, tmp_path, serving_precision="fp8")
