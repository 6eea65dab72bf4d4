"""SetFit's contrastive recipe and cross-validated selection through the API: chosen in
`POST /tasks`, trained by the job, reported in the version's metrics, served beside other
tasks; a pair that cannot work, or a bad option, is a 422 naming the fields."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.service.conftest import FAST_TRAINING, task_body

TEXTS = ["a great and fun movie", "a terrible boring film", "the plot was okay"]
CONTRASTIVE = {**FAST_TRAINING, "contrastive_iterations": 2, "head_steps": 5}


def test_contrastive_tasks_train_select_and_serve_in_mixed_batches(make_api) -> None:
    settings = {"training_threads": 2, "max_active_jobs_per_tenant": 3}
    with make_api(serving_precision="fp32", **settings) as api:
        tenant = api.tenant()
        bodies = {
            "contrastive": {"method": "contrastive", "hyperparameters": CONTRASTIVE},
            "list-contrastive-cv": {
                "method": "list",
                "hyperparameters": {
                    **CONTRASTIVE,
                    "teacher": "contrastive",
                    "selection": "cv",
                    "cv_folds": 2,
                },
            },
            "prompt": {"method": "prompt"},
        }
        created = {name: api.create_task(tenant, name=name, **b) for name, b in bodies.items()}
        ready = {name: api.wait_task(tenant, t["id"], 120) for name, t in created.items()}
        for task in ready.values():
            assert task["status"] == "ready", task
        # the contrastive recipes read the pooled text, even on this MLM backbone
        assert ready["contrastive"]["head_kind"] == "similarity"
        assert ready["list-contrastive-cv"]["head_kind"] == "similarity"
        assert ready["prompt"]["head_kind"] == "mlm"
        assert ready["contrastive"]["adapter"]["metrics"]["method"] == "contrastive"
        selection = ready["list-contrastive-cv"]["adapter"]["metrics"]["selection"]
        assert selection["folds"] == 2 and selection["choice"] in selection["candidates"]
        assert selection["temperature"] > 0
        alone = {name: api.predict(tenant, t["id"], TEXTS) for name, t in ready.items()}
        with ThreadPoolExecutor(2 * len(ready)) as pool:
            futures = [
                (name, pool.submit(api.predict, tenant, task["id"], TEXTS))
                for name, task in list(ready.items()) * 2
            ]
            together = [(name, future.result()) for name, future in futures]
        for name, answer in together:
            for got, want in zip(answer["predictions"], alone[name]["predictions"], strict=True):
                assert got["label"] == want["label"]
                assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"method": "contrastive", "tuner": "linear"}, ["tuner", "method"]),
        (
            {
                "method": "list",
                "tuner": "linear",
                "hyperparameters": {**FAST_TRAINING, "teacher": "contrastive"},
            },
            ["tuner", "method", "hyperparameters.teacher"],
        ),
        ({"hyperparameters": {**FAST_TRAINING, "teacher": "setfit"}}, ["hyperparameters.teacher"]),
        (
            {"hyperparameters": {**FAST_TRAINING, "selection": "best"}},
            ["hyperparameters.selection"],
        ),
        ({"hyperparameters": {**FAST_TRAINING, "cv_folds": 1}}, ["hyperparameters.cv_folds"]),
        (
            {"method": "contrastive", "hyperparameters": {**FAST_TRAINING, "head_lr": -1}},
            ["hyperparameters.head_lr"],
        ),
        ({"method": "setfit"}, ["method"]),
    ],
)
def test_what_cannot_work_is_a_422_naming_the_fields(make_api, overrides, fields) -> None:
    with make_api() as api:
        tenant = api.tenant()
        response = api.client.post("/tasks", json=task_body(**overrides), headers=tenant)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert [detail["field"] for detail in error["details"]] == fields, error


def test_the_step_cap_counts_every_cross_validation_fold(make_api) -> None:
    """5 teacher steps and 3 folds are 4 runs of 5 steps: 20 steps, over a cap of 15."""
    with make_api(max_training_steps=15) as api:
        tenant = api.tenant()
        one_run = {**FAST_TRAINING, "sessions": 0}
        assert api.create_task(tenant, method="prompt", hyperparameters=one_run)["id"]
        body = task_body(
            method="prompt", hyperparameters={**one_run, "selection": "cv", "cv_folds": 3}
        )
        response = api.client.post("/tasks", json=body, headers=tenant)
        assert response.status_code == 422, response.text
        assert "20 training steps" in response.json()["error"]["message"]


def test_a_contrastive_task_takes_label_words_the_mlm_head_could_not(make_api) -> None:
    """Its similarity head embeds label sentences, so a label word need not be one token."""
    with make_api() as api:
        tenant = api.tenant()
        words = {"positive": "great", "negative": "zzqxjv"}
        refused = api.client.post(
            "/tasks", json=task_body(method="prompt", label_words=words), headers=tenant
        )
        assert refused.status_code == 422
        task = api.create_task(
            tenant, method="contrastive", label_words=words, hyperparameters=CONTRASTIVE
        )
        assert api.wait_task(tenant, task["id"])["status"] == "ready"
