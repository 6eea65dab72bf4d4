"""Tasks of several tuners through the API: chosen in `POST /tasks`, reported in the task's
JSON, trained side by side, and served concurrently in one server's mixed batches."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.service.conftest import FAST_TRAINING, pg_schema, task_body

TEXTS = ["a great and fun movie", "a terrible boring film", "the plot was okay"]
# Tuner -> (method, options): one of each kind of site (inside layers, at the input, a whole
# layer, after the encoder, the LiST adapter).
TUNERS = {
    "adapter": ("list", {}),
    "lora": ("prompt", {"lora_rank": 4}),
    "prefix": ("prompt", {"prefix_length": 4}),
    "partial": ("prompt", {"partial_layers": 1}),
    "side": ("prompt", {}),
    "mlp": ("classic", {"mlp_layers": 2}),
}


def test_tasks_of_many_tuners_train_and_serve_concurrently(make_api) -> None:
    """In fp32, where a row's answer may not depend on its batch beyond 1e-5."""
    settings = {"training_threads": 2, "max_active_jobs_per_tenant": len(TUNERS)}
    with make_api(serving_precision="fp32", **settings) as api:
        tenant = api.tenant()
        created = {
            tuner: api.create_task(
                tenant,
                name=tuner,
                method=method,
                tuner=tuner,
                hyperparameters={**FAST_TRAINING, **options},
            )
            for tuner, (method, options) in TUNERS.items()
        }
        assert {tuner: task["tuner"] for tuner, task in created.items()} == {t: t for t in TUNERS}
        ready = {tuner: api.wait_task(tenant, task["id"]) for tuner, task in created.items()}
        for tuner, task in ready.items():
            assert task["status"] == "ready", task
            assert task["tuner"] == tuner and task["adapter"]["metrics"]["tuner"] == tuner
        alone = {t: api.predict(tenant, task["id"], TEXTS) for t, task in ready.items()}
        with ThreadPoolExecutor(len(ready) * 2) as pool:
            futures = [
                (tuner, pool.submit(api.predict, tenant, task["id"], TEXTS))
                for tuner, task in list(ready.items()) * 2
            ]
            together = [(tuner, future.result()) for tuner, future in futures]
        for tuner, answer in together:
            for got, want in zip(answer["predictions"], alone[tuner]["predictions"], strict=True):
                assert got["label"] == want["label"]
                assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
        # Different tuners' tasks answer differently: no row took another task's parameters.
        assert len({str(answer["predictions"][0]["scores"]) for answer in alone.values()}) > 1
        backbone = api.client.get("/info").json()["backbone"]
        if backbone["serving_forward"] == "scripted":
            fallbacks = backbone["serving_eager_fallback_rows"]
            assert {"lora", "prefix", "partial"} <= set(fallbacks)
            metrics = api.client.get("/metrics").text
            assert 'listserve_eager_fallback_rows_total{tuner="lora"}' in metrics


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_tuner_is_stored_and_bad_choices_are_422_naming_the_fields(make_api, backend):
    with pg_schema() as url:
        overrides = {"database_url": url} if backend == "postgresql" else {}
        with make_api(**overrides) as api:
            tenant = api.tenant()
            default = api.create_task(tenant)
            assert default["tuner"] == "adapter"
            lora = api.create_task(tenant, tuner="lora", method="prompt")
            read = api.client.get(f"/tasks/{lora['id']}", headers=tenant).json()
            assert read["tuner"] == "lora"
            pair = api.client.post(
                "/tasks", json=task_body(tuner="mlp", method="prompt"), headers=tenant
            )
            assert pair.status_code == 422
            fields = [detail["field"] for detail in pair.json()["error"]["details"]]
            assert fields == ["tuner", "method"]
            unknown = api.client.post("/tasks", json=task_body(tuner="nope"), headers=tenant)
            assert unknown.status_code == 422
            assert unknown.json()["error"]["details"][0]["field"] == "tuner"
            option = api.client.post(
                "/tasks",
                json=task_body(tuner="lora", hyperparameters={"lora_rank": 0}),
                headers=tenant,
            )
            assert option.status_code == 422
            assert option.json()["error"]["details"][0]["field"] == "hyperparameters.lora_rank"
