"""A tenant's life after the first model, over HTTP on SQLite and PostgreSQL: versions,
promotion and pinning, more examples, retraining, feedback, suggestions and predicting with
several tasks at once; another tenant's ids are 404 everywhere."""

from collections.abc import Iterator

import pytest

from service.registry import tasks as task_registry
from service.registry.models import Task, TaskData
from tests.service.conftest import Api, task_body, wait_until

EVALUATION = [
    {"text": "a great film", "label": "positive"},
    {"text": "an awful film", "label": "negative"},
]
MORE = [
    {"text": "a lovely warm story", "label": "positive"},
    {"text": "boring and far too long", "label": "negative"},
]


@pytest.fixture
def api(make_api, database_url: str) -> Iterator[Api]:
    with make_api(database_url=database_url) as running:
        yield running


def finished(api: Api, tenant: dict, job_id: str) -> dict:
    def done() -> dict | None:
        job = api.client.get(f"/jobs/{job_id}", headers=tenant).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, 60, f"job {job_id} to end")


def retrain(api: Api, tenant: dict, task_id: str, promote: str = "always") -> dict:
    response = api.client.post(
        f"/tasks/{task_id}/retrain", json={"promote": promote}, headers=tenant
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["promote"], job["task_id"]) == ("retrain", promote, task_id)
    return finished(api, tenant, job["id"])


def test_retrain_then_promote_back_and_pin_versions(api: Api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    first = api.predict(tenant, task["id"], ["a fun movie"], with_ids=True)
    assert first["adapter_version"] == 1 and first["predictions"][0]["id"].startswith("prd_")

    added = api.client.post(
        f"/tasks/{task['id']}/examples", json={"examples": MORE}, headers=tenant
    )
    assert added.status_code == 201, added.text
    assert added.json()["totals"]["examples"] == 6
    job = retrain(api, tenant, task["id"])
    assert job["status"] == "succeeded" and job["result"] == {"version": 2, "promoted": True}
    assert job["metrics"]["labeled_examples"] == 6  # all the task's data, the new examples too

    versions = api.client.get(f"/tasks/{task['id']}/versions", headers=tenant).json()
    assert versions["serving_version"] == 2
    assert [(v["version"], v["serving"]) for v in versions["data"]] == [(2, True), (1, False)]
    assert versions["data"][0]["method"] == "list" and "steps" in versions["data"][0]["metrics"]
    assert api.predict(tenant, task["id"], ["a fun movie"])["adapter_version"] == 2
    assert api.client.get(f"/tasks/{task['id']}", headers=tenant).json()["adapter"]["version"] == 2

    pinned = api.client.post(
        f"/predict/{task['id']}",
        params={"version": 1},
        json={"inputs": ["a fun movie"]},
        headers=tenant,
    ).json()
    assert pinned["adapter_version"] == 1
    assert pinned["predictions"][0]["scores"] == pytest.approx(
        first["predictions"][0]["scores"], abs=1e-5
    )

    promoted = api.client.post(f"/tasks/{task['id']}/versions/1/promote", headers=tenant)
    assert promoted.status_code == 200 and promoted.json()["serving"] is True
    assert api.predict(tenant, task["id"], ["a fun movie"])["adapter_version"] == 1

    missing = api.client.post(
        f"/predict/{task['id']}", params={"version": 7}, json={"inputs": ["x"]}, headers=tenant
    )
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "version not found"
    assert (
        api.client.post(f"/tasks/{task['id']}/versions/7/promote", headers=tenant).status_code
        == 404
    )

    other = api.tenant("other")
    for method, path in [
        ("GET", f"/tasks/{task['id']}/versions"),
        ("POST", f"/tasks/{task['id']}/versions/1/promote"),
        ("POST", f"/tasks/{task['id']}/retrain"),
    ]:
        assert api.client.request(method, path, headers=other).status_code == 404, path
    assert (
        api.client.post(
            f"/predict/{task['id']}", params={"version": 1}, json={"inputs": ["x"]}, headers=other
        ).status_code
        == 404
    )


def test_if_better_decides_on_the_evaluation_set_and_says_so_in_an_event(api: Api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant, evaluation=EVALUATION)
    job = retrain(api, tenant, task["id"], promote="if_better")
    events = api.client.get(f"/jobs/{job['id']}/events", headers=tenant).json()["data"]
    (decision,) = [e["data"] for e in events if e["kind"] == "promotion"]
    assert decision["policy"] == "if_better" and decision["evaluation_examples"] == 2
    assert decision["promoted"] == (decision["new_accuracy"] >= decision["serving_accuracy"])
    serving = api.client.get(f"/tasks/{task['id']}/versions", headers=tenant).json()
    assert serving["serving_version"] == (2 if decision["promoted"] else 1)
    assert job["result"] == {"version": 2, "promoted": decision["promoted"]}
    assert [e["kind"] for e in events][-2:] == ["promotion", "succeeded"]


def test_a_retrain_while_a_job_runs_is_a_conflict_and_the_old_version_keeps_serving(
    api: Api,
) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    with api.services.database.session() as session:  # the next training is slow
        session.get(Task, task["id"]).hyperparameters = {
            "budget": "fast",
            "teacher_steps": 20000,
            "sessions": 0,
        }
    response = api.client.post(f"/tasks/{task['id']}/retrain", headers=tenant)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    again = api.client.post(f"/tasks/{task['id']}/retrain", headers=tenant)
    assert again.status_code == 409 and again.json()["error"]["details"] == {"job_id": job_id}
    served = api.predict(tenant, task["id"], ["a fun movie"])
    assert served["adapter_version"] == 1
    assert api.client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] == "ready"
    assert api.client.post(f"/jobs/{job_id}/cancel", headers=tenant).status_code == 202
    assert finished(api, tenant, job_id)["status"] == "cancelled"
    assert api.client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] == "ready"


def test_added_examples_are_validated_like_a_new_task(api: Api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    url = f"/tasks/{task['id']}/examples"
    bad = [{"text": "hi", "label": "meh"}]
    created = api.client.post("/tasks", json=task_body(examples=bad), headers=tenant).json()
    added = api.client.post(url, json={"examples": bad}, headers=tenant).json()
    assert added["error"]["message"] == created["error"]["message"]
    assert added["error"]["message"].startswith("examples[0].label: 'meh' is not one of")

    blank = api.client.post(url, json={"unlabeled": ["ok", "  "]}, headers=tenant).json()
    assert blank["error"]["message"] == "unlabeled[1]: must not be empty"
    empty = api.client.post(url, json={}, headers=tenant)
    assert empty.status_code == 422 and empty.json()["error"]["details"][0]["field"] == "examples"
    unknown = api.client.post(url, json={"examples": [], "extra": 1}, headers=tenant)
    assert unknown.status_code == 422

    limit = api.services.settings.max_examples
    many = [{"text": f"text {i}", "label": "positive"} for i in range(limit - 3)]
    over = api.client.post(url, json={"examples": many}, headers=tenant).json()["error"]
    assert over["message"] == (
        f"examples: the task has 4; {limit - 3} more would make {limit + 1}, "
        f"at most {limit} allowed"
    )
    ok = api.client.post(
        url, json={"examples": MORE, "unlabeled": ["u1"], "evaluation": EVALUATION}, headers=tenant
    ).json()
    assert ok["added"] == {"examples": 2, "unlabeled": 1, "evaluation": 2, "feedback": 0}
    assert ok["totals"] == {"examples": 6, "unlabeled": 6, "evaluation": 2, "feedback": 0}
    with api.services.database.read_session() as session:
        data = task_registry.get_task_data(session, task["id"])
        assert data.examples[-2:] == MORE and data.evaluation == EVALUATION
    assert api.client.post(url, json={"examples": MORE}, headers=api.tenant("b")).status_code == 404


def test_feedback_by_prediction_id_or_text_becomes_a_labelled_example(api: Api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    url = f"/tasks/{task['id']}/feedback"
    answer = api.predict(tenant, task["id"], ["the ending was a letdown"], with_ids=True)
    prediction = answer["predictions"][0]
    stored = api.client.post(
        url, json={"prediction_id": prediction["id"], "label": "negative"}, headers=tenant
    )
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["example"] == {
        "text": "the ending was a letdown",
        "label": "negative",
        "text_b": None,
    }
    assert body["prediction"] == {"version": 1, "label": prediction["label"]}
    assert body["replaced"] is False and body["totals"]["feedback"] == 1
    again = api.client.post(
        url, json={"prediction_id": prediction["id"], "label": "positive"}, headers=tenant
    ).json()
    assert again["replaced"] is True and again["totals"]["examples"] == 5  # relabelled, not added
    by_text = api.client.post(url, json={"text": "pure joy", "label": "positive"}, headers=tenant)
    assert by_text.status_code == 201 and by_text.json()["prediction"] is None

    def refused(body: dict) -> dict:
        response = api.client.post(url, json=body, headers=tenant)
        assert response.status_code == 422, response.text
        return response.json()["error"]

    assert refused({"label": "positive"})["details"][0]["field"] == "prediction_id"
    both = {"prediction_id": prediction["id"], "text": "x", "label": "positive"}
    assert refused(both)["details"][0]["field"] == "prediction_id"
    assert refused({"text": "x", "label": "meh"})["message"].startswith("label: 'meh' is not one")
    forged = prediction["id"][:-3] + ("AAA" if not prediction["id"].endswith("AAA") else "BBB")
    assert refused({"prediction_id": forged, "label": "positive"})["message"] == (
        "prediction_id: was not issued for this task"
    )
    assert (
        "must start with 'prd_'" in refused({"prediction_id": "x", "label": "positive"})["message"]
    )
    other_task = api.ready_task(tenant, name="other")
    elsewhere = api.client.post(
        f"/tasks/{other_task['id']}/feedback",
        json={"prediction_id": prediction["id"], "label": "positive"},
        headers=tenant,
    )
    assert elsewhere.status_code == 422
    assert (
        api.client.post(
            url, json={"text": "x", "label": "positive"}, headers=api.tenant("b")
        ).status_code
        == 404
    )

    job = retrain(api, tenant, task["id"])
    assert job["metrics"]["labeled_examples"] == 6  # 4 + the relabelled prediction + the text
    assert api.client.delete(f"/tasks/{task['id']}", headers=tenant).status_code == 204
    with api.services.database.read_session() as session:
        assert session.get(TaskData, task["id"]) is None  # feedback goes with the task


def test_suggestions_are_uncertain_spread_and_never_already_labelled(api: Api) -> None:
    tenant = api.tenant()
    unlabeled = [
        "a great and fun movie",  # labelled already
        "good film",
        "good film",
        "Good  film",
        "bad ending",
        "nice cast",
        "weak story",
        "fun show",
        "an odd one",
        "not sure about it",
    ]
    task = api.ready_task(tenant, unlabeled=unlabeled)
    url = f"/tasks/{task['id']}/suggestions"
    response = api.client.get(url, params={"limit": 5}, headers=tenant)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["adapter_version"] == 1 and body["pool"] == 7  # deduplicated, labelled left out
    texts = [s["text"] for s in body["data"]]
    assert len(texts) == 5 and len({t.casefold() for t in texts}) == 5
    assert "a great and fun movie" not in texts
    for suggestion in body["data"]:
        scores = sorted(suggestion["scores"].values(), reverse=True)
        assert suggestion["uncertainty"] == pytest.approx(1 - (scores[0] - scores[1]), abs=1e-5)
        assert suggestion["label"] == max(suggestion["scores"], key=suggestion["scores"].get)
    assert len({s["label"] for s in body["data"]}) == 2  # both labels get their turn
    all_of_them = api.client.get(url, params={"limit": 100}, headers=tenant).json()["data"]
    assert sorted(s["text"] for s in all_of_them) == sorted(  # "Good  film" is "good film"
        [
            "good film",
            "bad ending",
            "nice cast",
            "weak story",
            "fun show",
            "an odd one",
            "not sure about it",
        ]
    )
    too_many = api.client.get(url, params={"limit": 101}, headers=tenant)
    assert too_many.status_code == 422 and too_many.json()["error"]["message"].startswith("limit:")
    assert api.client.get(url, headers=api.tenant("b")).status_code == 404


def test_many_tasks_in_one_request_share_one_submit(api: Api) -> None:
    tenant = api.tenant()
    first = api.ready_task(tenant)
    second = api.ready_task(tenant, name="two", label_words={"positive": "good", "negative": "bad"})
    inputs = ["a fun movie", "a dull film", "so so"]
    before = api.services.batcher.stats()
    response = api.client.post(
        "/predict", json={"tasks": [second["id"], first["id"]], "inputs": inputs}, headers=tenant
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["task"] for r in results] == [second["id"], first["id"]]
    wait_until(
        lambda: api.services.batcher.stats()["requests"] == before["requests"] + 1,
        10,
        "the request to be counted",
    )
    assert api.services.batcher.stats()["rows"] == before["rows"] + 6  # one submit, six rows
    for result in results:
        alone = api.predict(tenant, result["task"], inputs)
        assert result["adapter_version"] == alone["adapter_version"]
        for got, want in zip(result["predictions"], alone["predictions"], strict=True):
            assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)

    def refused(body: dict, status: int = 422) -> dict:
        answer = api.client.post("/predict", json=body, headers=tenant)
        assert answer.status_code == status, answer.text
        return answer.json()["error"]

    limit = api.services.settings.max_predict_inputs
    over = refused({"tasks": [first["id"], second["id"]], "inputs": ["x"] * (limit // 2 + 1)})
    assert over["message"].startswith(f"inputs: {limit // 2 + 1} inputs x 2 tasks")
    assert refused({"tasks": [first["id"], first["id"]], "inputs": ["x"]})["message"].startswith(
        "tasks: task ids must be distinct"
    )
    assert refused({"tasks": [], "inputs": ["x"]})["message"] == "tasks: give at least one task id"
    theirs = api.ready_task(api.tenant("b"))
    refused({"tasks": [first["id"], theirs["id"]], "inputs": ["x"]}, status=404)


def test_tenants_follow_and_cancel_their_own_jobs(api: Api) -> None:
    tenant, other = api.tenant(), api.tenant("other")
    task = api.ready_task(tenant)
    job_id = task["job"]["id"]
    job = api.client.get(f"/jobs/{job_id}", headers=tenant).json()
    assert (job["kind"], job["status"], job["error"], job["promote"]) == (
        "create",
        "succeeded",
        None,
        None,
    )
    assert job["trained_steps"] == job["metrics"]["steps"] > 0
    assert job["result"] == {"version": 1, "promoted": True}
    assert [s["session"] for s in job["sessions"]] == [0, 1]  # teacher, then one session
    page = api.client.get(f"/jobs/{job_id}/events", params={"limit": 2}, headers=tenant).json()
    assert [e["kind"] for e in page["data"]] == ["queued", "started"] and page["has_more"]
    rest = api.client.get(
        f"/jobs/{job_id}/events", params={"after": page["data"][-1]["id"]}, headers=tenant
    ).json()["data"]
    assert rest[-1]["kind"] == "succeeded"
    assert api.client.post(f"/jobs/{job_id}/cancel", headers=tenant).status_code == 409

    second = retrain(api, tenant, task["id"])
    listed = api.client.get(f"/tasks/{task['id']}/jobs", headers=tenant).json()
    assert [j["id"] for j in listed["data"]] == [second["id"], job_id]
    one = api.client.get(f"/tasks/{task['id']}/jobs", params={"limit": 1}, headers=tenant).json()
    assert one["has_more"] and one["data"][0]["id"] == second["id"]

    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/events"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("GET", f"/tasks/{task['id']}/jobs"),
    ]:
        response = api.client.request(method, path, headers=other)
        assert response.status_code == 404, path
    assert api.client.get(f"/admin/jobs/{job_id}", headers=api.admin).status_code == 200


def test_a_failed_job_says_whose_fault_it_was(api: Api) -> None:
    tenant = api.tenant()
    task = api.ready_task(tenant)
    with api.services.database.session() as session:  # data no validation would let in
        data = session.get(TaskData, task["id"])
        data.examples = [*data.examples, {"text": "x", "label": "not a label"}]
    job = retrain(api, tenant, task["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "user_error" and job["error"]["code"] == "invalid_training_data"
    assert "examples[4].label" in job["error"]["message"]
    assert api.client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] == "ready"
