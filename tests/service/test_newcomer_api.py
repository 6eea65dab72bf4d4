"""What a newcomer meets over HTTP (issue 33): offline docs assets, limits in the schema, the
effective label words, progress with time left and a 409 that says when to retry, the full
evaluation report of a version, the per-task metrics, and a JSON body sent as text/plain."""

import math
import re
from pathlib import Path

import huggingface_hub.constants as constants
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.serving import metrics as serving_metrics
from service.serving.metrics import OTHER_TASKS, count_task_predictions
from tests.service.conftest import SLOW_TRAINING, service_settings, task_body, wait_until


def test_the_docs_pages_load_their_assets_from_the_server(api) -> None:
    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
        ("/redoc", ("redoc.standalone.js",)),
    ):
        html = api.client.get(page).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html
        for asset in assets:
            assert f"/docs-assets/{asset}" in html
            response = api.client.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 100_000
    assert b"cdn.redoc.ly" not in api.client.get("/docs-assets/redoc.standalone.js").content
    assert api.client.get("/docs-assets/nothing.js").json()["error"]["type"] == "not_found"


def test_the_schema_and_info_say_the_configured_predict_limits(make_api) -> None:
    with make_api(max_predict_inputs=7, max_text_chars=123) as api:
        schema = api.client.get("/openapi.json").json()
        info = api.client.get("/info").json()
    inputs = schema["components"]["schemas"]["PredictRequest"]["properties"]["inputs"]
    assert inputs["maxItems"] == 7
    assert {"type": "string", "maxLength": 123} in inputs["items"]["anyOf"]
    assert "At most 7 inputs" in inputs["description"] and "123 characters" in inputs["description"]
    pair = schema["components"]["schemas"]["PairInput"]["properties"]["text"]
    assert pair["maxLength"] == 123
    assert "At most 7 inputs" in schema["paths"]["/predict/{task_id}"]["post"]["description"]
    assert "415" in schema["paths"]["/tasks"]["post"]["responses"]
    assert info["limits"] == {"max_predict_inputs": 7, "max_text_chars": 123}


@pytest.mark.parametrize("path", ["/tasks", "/predict/tsk_x"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_sent_as_another_media_type_is_told_the_content_type(api, path, content_type) -> None:
    tenant = api.tenant()
    headers = {**tenant, **({"content-type": content_type} if content_type else {})}
    response = api.client.post(path, content=b'{"inputs": ["a"]}', headers=headers)
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["type"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert error["details"]["content_type"] == (content_type or "none")
    assert "valid dictionary" not in error["message"]


def test_labels_without_words_use_their_names_and_say_so(api) -> None:
    tenant = api.tenant()
    body = task_body(labels=["good", "bad"], label_words={"good": "great"})
    body["examples"] = [
        {**e, "label": "good" if e["label"] == "positive" else "bad"} for e in body["examples"]
    ]
    task = api.client.post("/tasks", json=body, headers=tenant).json()
    assert task["label_words"] == {"good": "great", "bad": "bad"}
    body = task_body(labels=["very good", "bad"], label_words={"bad": "terrible"})
    body["examples"] = [
        {**e, "label": "very good" if e["label"] == "positive" else "bad"} for e in body["examples"]
    ]
    response = api.client.post("/tasks", json=body, headers=tenant)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "label_words.very good"
    assert (
        "label 'very good' has no entry in label_words, so its own name is its word"
        in (detail["message"])
    )
    assert "2 tokens" in detail["message"]


def test_a_training_job_reports_time_left_and_the_409_when_to_retry(api) -> None:
    tenant = api.tenant()
    task = api.create_task(tenant, hyperparameters=SLOW_TRAINING)

    def estimated() -> dict | None:
        job = api.client.get(f"/admin/jobs/{task['job']['id']}", headers=api.admin).json()
        progress = job["progress"] or {}
        return progress if progress.get("eta_seconds") else None

    progress = wait_until(estimated, 30, "an estimate of the time left")
    assert progress["elapsed_seconds"] > 0 and progress["eta_seconds"] > 0
    response = api.client.post(f"/predict/{task['id']}", json={"inputs": ["a"]}, headers=tenant)
    assert response.status_code == 409
    eta = response.json()["error"]["details"]["eta_seconds"]
    assert eta is not None and eta > 0
    assert int(response.headers["Retry-After"]) in (math.ceil(eta), math.ceil(eta) + 1)
    assert re.search(r"about \d+ s of training left", response.json()["error"]["message"])
    api.client.post(f"/admin/jobs/{task['job']['id']}/cancel", headers=api.admin)
    cancelled = api.wait_task(tenant, task["id"])
    response = api.client.post(f"/predict/{task['id']}", json={"inputs": ["a"]}, headers=tenant)
    assert cancelled["status"] == "cancelled" and response.status_code == 409
    assert "Retry-After" not in response.headers  # waiting will not make it ready


def test_a_version_reports_the_full_evaluation_and_metrics_count_it(api) -> None:
    tenant = api.tenant()
    evaluation = [
        {"text": "a great and lovely film", "label": "positive"},
        {"text": "a boring and awful plot", "label": "negative"},
        {"text": "superb music", "label": "positive"},
    ]
    task = api.ready_task(tenant, evaluation=evaluation)
    report = task["adapter"]["metrics"]["evaluation"]
    assert report["examples"] == 3 and 0 <= report["macro_f1"] <= 1
    assert set(report["per_label"]) == {"positive", "negative"}
    assert set(report["per_label"]["positive"]) == {"precision", "recall", "f1", "support"}
    assert report["confusion_matrix"]["labels"] == ["positive", "negative"]
    assert sum(map(sum, report["confusion_matrix"]["matrix"])) == 3
    api.predict(tenant, task["id"], ["fun", "dull"])
    page = api.client.get("/metrics").text
    assert re.search(rf'listserve_task_predictions_total{{task="{task["id"]}"}} [1-9]', page)
    assert re.search(r'listserve_jobs_finished_total\{outcome="succeeded"\} [1-9]', page)
    assert re.search(r'listserve_job_seconds_count\{outcome="succeeded"\} [1-9]', page)
    assert re.search(r"listserve_training_seconds_count [1-9]", page)


def test_per_task_series_are_bounded_and_the_rest_count_as_other() -> None:
    limit = len(serving_metrics._task_series) + 2
    first, second, third = (f"tsk_bound_{i}" for i in range(3))
    before = serving_metrics.TASK_PREDICTIONS.labels(OTHER_TASKS)._value.get()
    for task_id in (first, second, third, first):
        count_task_predictions(task_id, 5, limit)
    assert serving_metrics.TASK_PREDICTIONS.labels(first)._value.get() == 10
    assert serving_metrics.TASK_PREDICTIONS.labels(second)._value.get() == 5
    assert serving_metrics.TASK_PREDICTIONS.labels(OTHER_TASKS)._value.get() == before + 5
    assert third not in serving_metrics._task_series


def test_a_backbone_that_cannot_be_had_is_one_line_in_ready(
    tmp_path, monkeypatch, json_log
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    settings = service_settings(tmp_path, Path("roberta-base"))
    with TestClient(create_app(settings)) as client:

        def failed() -> dict | None:
            ready = client.get("/ready")
            return ready.json() if ready.json()["detail"].startswith("start-up failed") else None

        ready = wait_until(failed, 30, "start-up to fail")
    assert ready["detail"].startswith(
        "start-up failed: LISTSERVE_BACKBONE=roberta-base: not in the local Hugging Face cache"
    )
    assert "set LISTSERVE_BACKBONE to auto" in ready["detail"]
    assert "Traceback" not in json_log.getvalue()
