"""Every validation rule answers 422 (413 for size) in the error format, naming the field.

The app here runs with tightened limits so each configurable limit is exercised at its edge.
"""

from collections.abc import Iterator

import pytest

from service.settings import Settings
from tests.service.conftest import Api, running_api, service_settings, task_body

LIMITS = {
    "max_labels": 4,
    "max_examples": 6,
    "max_unlabeled": 5,
    "max_evaluation": 2,
    "max_text_chars": 40,
    "max_name_chars": 20,
    "max_label_chars": 12,
    "max_label_word_chars": 10,
    "max_template_chars": 40,
    "max_training_steps": 100,
    "max_body_bytes": 4000,
    "max_predict_inputs": 3,
    "max_active_jobs_per_tenant": 50,
    "max_tasks_per_tenant": 50,
}
POS, NEG = "positive", "negative"


def examples(*pairs: tuple[str, str]) -> list[dict]:
    return [{"text": text, "label": label} for text, label in pairs]


@pytest.fixture(scope="module")
def limited(tmp_path_factory, tiny_roberta_path) -> Iterator[tuple[Api, dict]]:
    root = tmp_path_factory.mktemp("validation")
    with running_api(service_settings(root, tiny_roberta_path, **LIMITS)) as api:
        yield api, api.tenant()


CASES = {
    "one label": ({"labels": [POS]}, "labels", "2 to 4 labels"),
    "too many labels": ({"labels": ["a", "b", "c", "d", "e"]}, "labels", "2 to 4 labels"),
    "duplicate labels": ({"labels": [POS, NEG, POS]}, "labels", "unique"),
    "empty label": ({"labels": [" ", NEG]}, "labels[0]", "empty"),
    "long label": ({"labels": [POS, "n" * 13]}, "labels[1]", "at most 12"),
    "label without example": (
        {
            "labels": [POS, NEG, "neutral"],
            "label_words": {POS: "great", NEG: "terrible", "neutral": "okay"},
        },
        "examples",
        "none for ['neutral']",
    ),
    "unknown example label": (
        {"examples": examples(("fine", "meh"), ("good", POS), ("bad", NEG))},
        "examples[0].label",
        "'meh' is not one of",
    ),
    "too many examples": (
        {"examples": examples(*[("good", POS), ("bad", NEG)] * 4)},
        "examples",
        "at most 6",
    ),
    "empty example text": (
        {"examples": examples(("good", POS), ("   ", NEG))},
        "examples[1].text",
        "empty",
    ),
    "long example text": (
        {"examples": examples(("g" * 41, POS), ("bad", NEG))},
        "examples[0].text",
        "at most 40 characters",
    ),
    "pair template without text_b": (
        {"template": "{text} ? {mask} , {text_b}", "unlabeled": []},
        "examples[0].text_b",
        "required",
    ),
    "unlabeled with a pair template": (
        {
            "template": "{text} ? {mask} , {text_b}",
            "examples": [
                {"text": "a", "text_b": "b", "label": POS},
                {"text": "a", "text_b": "b", "label": NEG},
            ],
        },
        "unlabeled",
        "pair",
    ),
    "too many unlabeled": ({"unlabeled": list("abcdef")}, "unlabeled", "at most 5"),
    "empty unlabeled": ({"unlabeled": ["a", ""]}, "unlabeled[1]", "empty"),
    "long unlabeled": ({"unlabeled": ["u" * 41]}, "unlabeled[0]", "at most 40"),
    "too many evaluation": (
        {"evaluation": examples(("a", POS), ("b", NEG), ("c", POS))},
        "evaluation",
        "at most 2",
    ),
    "unknown evaluation label": (
        {"evaluation": examples(("a", "other"))},
        "evaluation[0].label",
        "not one of",
    ),
    "template without mask": ({"template": "{text} It was ."}, "template", "{mask}"),
    "template with two masks": ({"template": "{text} {mask} {mask}"}, "template", "found 2"),
    "template without text": ({"template": "It was {mask} ."}, "template", "{text}"),
    "unknown placeholder": ({"template": "{text} {mask} {foo}"}, "template", "{foo}"),
    "long template": ({"template": "{text} " + "x" * 40 + " {mask}"}, "template", "at most 40"),
    "multi-token label word": (
        {"label_words": {POS: "great", NEG: "zzqxjv"}},
        "label_words.negative",
        "exactly one token",
    ),
    "label word for unknown label": (
        {"label_words": {POS: "great", NEG: "bad", "x": "good"}},
        "label_words",
        "unknown labels",
    ),
    "long label word": ({"label_words": {POS: "g" * 11, NEG: "bad"}}, "label_words.positive", "10"),
    "unknown hyperparameter": ({"hyperparameters": {"foo": 1}}, "hyperparameters.foo", "unknown"),
    "bad hyperparameter": (
        {"hyperparameters": {"budget": "fast", "sessions": -1}},
        "hyperparameters.sessions",
        ">= 0",
    ),
    "bad budget": ({"hyperparameters": {"budget": "huge"}}, "hyperparameters.budget", "one of"),
    "too many steps": (
        {"hyperparameters": {"budget": "fast", "teacher_steps": 101, "sessions": 0}},
        "hyperparameters",
        "at most 100",
    ),
    "bad method": ({"method": "magic"}, "method", "'list', 'prompt', 'classic' or 'contrastive'"),
    "empty name": ({"name": " "}, "name", "empty"),
    "long name": ({"name": "n" * 21}, "name", "at most 20"),
    "unknown field": ({"labelz": [POS, NEG]}, "labelz", "Extra inputs"),
    "labels not a list": ({"labels": "positive,negative"}, "labels", "valid list"),
    "example without label": ({"examples": [{"text": "good"}]}, "examples[0].label", "required"),
    "number as text": (
        {"examples": [{"text": 5, "label": POS}, {"text": "b", "label": NEG}]},
        "examples[0].text",
        "valid string",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_task_validation(limited, case: str) -> None:
    api, tenant = limited
    overrides, field, reason = CASES[case]
    body = {k: v for k, v in task_body(**overrides).items() if v is not None}
    response = api.client.post("/tasks", json=body, headers=tenant)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["details"][0]["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert reason in error["message"]


MANY_SESSIONS = {"budget": "fast", "teacher_steps": 20, "sessions": 10}


@pytest.mark.parametrize("method", ["classic", "prompt"])
def test_the_step_cap_ignores_sessions_a_method_never_runs(limited, method: str) -> None:
    """Only `list` self-trains: 10 sessions cost `classic` and `prompt` nothing."""
    api, tenant = limited
    body = task_body(name=method, method=method, hyperparameters=MANY_SESSIONS)
    response = api.client.post("/tasks", json=body, headers=tenant)
    assert response.status_code == 202, response.text
    assert api.wait_task(tenant, response.json()["id"])["status"] == "ready"


def test_the_step_cap_counts_the_sessions_list_runs(limited) -> None:
    api, tenant = limited
    body = task_body(method="list", hyperparameters=MANY_SESSIONS)
    response = api.client.post("/tasks", json=body, headers=tenant)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == "hyperparameters"
    assert error["message"] == (
        "hyperparameters: 2020 training steps requested; at most 100 allowed"
    )


def test_the_baseline_body_is_valid(limited) -> None:
    api, tenant = limited
    task = api.ready_task(tenant)
    assert task["status"] == "ready"


def test_invalid_json_is_422_naming_the_body(limited) -> None:
    api, tenant = limited
    response = api.client.post(
        "/tasks", content=b'{"name": ', headers={**tenant, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body"


def test_body_size_limit_is_413_with_or_without_content_length(limited) -> None:
    api, tenant = limited
    big = task_body(unlabeled=["x" * 30] * 200)
    response = api.client.post("/tasks", json=big, headers=tenant)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    chunked = api.client.post(
        "/tasks", content=chunks(), headers={**tenant, "content-type": "application/json"}
    )
    assert chunked.status_code == 413


@pytest.fixture(scope="module")
def ready_tasks(limited) -> dict[str, str]:
    api, tenant = limited
    single = api.ready_task(tenant, name="single")
    pair = api.ready_task(
        tenant,
        name="pair",
        template="{text} ? {mask} , {text_b}",
        examples=[
            {"text": "good", "text_b": "fun", "label": POS},
            {"text": "bad", "text_b": "dull", "label": NEG},
        ],
        unlabeled=[],
    )
    return {"single": single["id"], "pair": pair["id"]}


PREDICT_CASES = {
    "too many inputs": ("single", ["a", "b", "c", "d"], "inputs", "at most 3"),
    "no inputs": ("single", [], "inputs", "at least one"),
    "empty text": ("single", ["good", " "], "inputs[1]", "empty"),
    "long text": ("single", ["x" * 41], "inputs[0]", "at most 40"),
    "pair text missing": ("pair", ["good film"], "inputs[0]", "pair task"),
    "empty pair text": ("pair", [{"text": "", "text_b": "x"}], "inputs[0].text", "empty"),
    "long text_b": ("pair", [{"text": "a", "text_b": "y" * 41}], "inputs[0].text_b", "at most"),
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_predict_validation(limited, ready_tasks, case: str) -> None:
    api, tenant = limited
    which, inputs, field, reason = PREDICT_CASES[case]
    response = api.client.post(
        f"/predict/{ready_tasks[which]}", json={"inputs": inputs}, headers=tenant
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == field and reason in error["message"]


def test_predict_body_shape_errors_name_the_field(limited, ready_tasks) -> None:
    api, tenant = limited
    url = f"/predict/{ready_tasks['single']}"
    missing = api.client.post(url, json={"texts": ["a"]}, headers=tenant).json()["error"]
    assert missing["details"][0]["field"] == "inputs"
    wrong = api.client.post(url, json={"inputs": [3]}, headers=tenant).json()["error"]
    assert wrong["details"][0]["field"].startswith("inputs[0]")
    pairs = api.predict(tenant, ready_tasks["pair"], [{"text": "good", "text_b": "fun"}])
    assert len(pairs["predictions"]) == 1


def test_every_limit_is_a_setting_read_from_the_environment(monkeypatch) -> None:
    defaults = Settings()
    assert (defaults.min_labels, defaults.max_labels) == (2, 50)
    for name in (
        "max_examples",
        "max_unlabeled",
        "max_text_chars",
        "max_body_bytes",
        "max_predict_inputs",
        "max_tasks_per_tenant",
        "max_active_jobs_per_tenant",
    ):
        monkeypatch.setenv(f"LISTSERVE_{name.upper()}", "7")
        assert getattr(Settings(), name) == 7
