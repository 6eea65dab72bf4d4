"""Hand-written hostile requests, on SQLite and on PostgreSQL, over real HTTP.

What a schema-driven fuzzer rarely produces: bytes that are not JSON or not UTF-8, huge and
deeply nested bodies, control characters, unpaired surrogates, megabyte strings, labels that
differ only by Unicode normalisation, odd templates and label words, unknown methods and
hyperparameters. Each must be refused with a 4xx in the documented format that names the field
and the reason (or accepted, where the input is legitimate), never with a 5xx.
"""

import dataclasses
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import (
    ADMIN,
    assert_error_format,
    create_tenant,
    live_server,
    train_task,
)
from tests.service.conftest import pg_schema, service_settings, task_body

MB = 1024 * 1024
MAX_BODY_BYTES = 4 * MB
MAX_ERROR_BYTES = 4096  # an error never echoes a megabyte of input back
CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")
LOST = "\ufffd" * 3  # how pydantic names a dict key holding an unpaired surrogate


@dataclass(frozen=True)
class Target:
    client: httpx.Client
    tenant: dict[str, str]
    task_id: str
    job_id: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request, tmp_path_factory, tiny_roberta_path) -> Iterator[Target]:
    """A live service per backend (PostgreSQL refuses NUL in text, SQLite does not: both must
    answer alike), with one trained task for /predict to reach past its 404."""
    root = tmp_path_factory.mktemp(f"cases-{request.param}")
    overrides: dict[str, Any] = {"max_body_bytes": MAX_BODY_BYTES}
    with pg_schema() as pg_url:
        if request.param == "postgresql":
            overrides["database_url"] = pg_url
        settings = service_settings(root, tiny_roberta_path, **overrides)
        with live_server(settings) as live, live.client() as client:
            tenant = create_tenant(client, "cases")
            task = train_task(client, tenant)
            yield Target(client, tenant, task["id"], task["job"]["id"])


@dataclass(frozen=True)
class Hostile:
    """One request and the answer it must get: `status`, and for a 4xx, the `field` the error
    names and a `reason` its message contains."""

    method: str
    path: str
    body: bytes | None
    status: int
    field: str | None = None  # None: the name is clipped (a 1 MB key), check only the reason
    reason: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    admin: bool = False


def encoded(value: Any) -> bytes:
    """JSON with every non-ASCII character escaped, so an unpaired surrogate travels as the
    six characters `\\ud800`, exactly as a hostile client would send it."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def task(**overrides: Any) -> bytes:
    return encoded(task_body(**overrides))


def predict(inputs: Any) -> bytes:
    return encoded({"inputs": inputs})


def invalid(
    path: str, body: bytes | None, field: str | None, reason: str, **kwargs: Any
) -> Hostile:
    return Hostile("POST", path, body, 422, field, reason, **kwargs)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


PREDICT = "/predict/{task}"
CASES: dict[str, Hostile] = {
    # Malformed JSON.
    "truncated JSON": invalid("/tasks", b'{"name": ', "body", "invalid JSON"),
    "not JSON": invalid("/tasks", b"hello", "body", "invalid JSON"),
    "trailing garbage": invalid("/tasks", b"{} x", "body", "invalid JSON"),
    "top-level array": invalid("/tasks", b"[]", "body", "valid dictionary"),
    "empty body": invalid("/tasks", b"", "body", "required"),
    "not UTF-8": invalid("/tasks", b'{"name": "\xff\xfe"}', "body", "not valid UTF-8"),
    "Latin-1 body": invalid(
        "/admin/tenants", '{"name": "é"}'.encode("latin-1"), "body", "UTF-8", admin=True
    ),
    "integer of 5000 digits": invalid(
        "/tasks", b'{"name": ' + b"9" * 5000 + b"}", "body", "could not be parsed"
    ),
    "NaN hyperparameter": invalid(
        "/tasks",
        task(hyperparameters={"budget": "fast"}).replace(b'"fast"}', b'"fast", "teacher_lr": NaN}'),
        "hyperparameters.teacher_lr",
        "finite",
    ),
    "JSON sent as text/plain": Hostile(
        "POST",
        "/tasks",
        task(),
        415,
        None,
        "Content-Type: application/json",
        headers={"content-type": "text/plain"},
    ),
    # Wrong types.
    "labels as a string": invalid("/tasks", task(labels="a,b"), "labels", "valid list"),
    "examples as an object": invalid("/tasks", task(examples={"a": 1}), "examples", "valid list"),
    "name null": invalid("/tasks", task(name=None), "name", "valid string"),
    "method as a number": invalid("/tasks", task(method=1), "method", "'list', 'prompt'"),
    "hyperparameters as a list": invalid(
        "/tasks", task(hyperparameters=[1]), "hyperparameters", "valid dictionary"
    ),
    "inputs as a string": invalid(PREDICT, encoded({"inputs": "hi"}), "inputs", "valid list"),
    "tenant name as a list": invalid(
        "/admin/tenants", encoded({"name": ["a"]}), "name", "string", admin=True
    ),
    "limit not a number": Hostile("GET", "/tasks?limit=ten", None, 422, "limit", "integer"),
    "limit out of range": Hostile("GET", "/tasks?limit=100000", None, 422, "limit", "200"),
    "event cursor not a number": Hostile(
        "GET", "/admin/jobs/{job}/events?after=x", None, 422, "after", "integer", admin=True
    ),
    "event cursor past 32 bits": Hostile(
        "GET",
        "/admin/jobs/{job}/events?after=2147483648",
        None,
        422,
        "after",
        "2147483647",
        admin=True,
    ),
    "unknown job status": Hostile(
        "GET", "/admin/jobs?status=lost", None, 422, "status", "queued", admin=True
    ),
    # Huge bodies and deep nesting.
    "body over the cap": Hostile("POST", "/tasks", b" " * (MAX_BODY_BYTES + 1), 413),
    "deep nesting": invalid("/tasks", nested(200_000).encode(), "body", "nested too deeply"),
    "deep nesting in a value": invalid(
        "/tasks",
        task(hyperparameters={"budget": "fast"}).replace(
            b'"fast"}', b'"fast", "sessions": ' + nested(500).encode() + b"}"
        ),
        "hyperparameters.sessions",
        "integer",
    ),
    "deep nesting in inputs": invalid(
        PREDICT, b'{"inputs": ' + nested(500).encode() + b"}", "inputs[0].str", "valid string"
    ),
    # Control characters and unpaired surrogates.
    "NUL in a task name": invalid("/tasks", task(name="a\x00b"), "name", "NUL"),
    "NUL in a tenant name": invalid(
        "/admin/tenants", encoded({"name": "a\x00"}), "name", "NUL", admin=True
    ),
    "NUL in an example": invalid(
        "/tasks",
        task(examples=[{"text": "great\x00", "label": "positive"}]),
        "examples[0].text",
        "NUL",
    ),
    "NUL in a predict input": invalid(PREDICT, predict(["a\x00"]), "inputs[0]", "NUL"),
    "NUL in a pair input": invalid(
        PREDICT, predict([{"text": "a", "text_b": "\x00"}]), "inputs[0].text_b", "NUL"
    ),
    "NUL in a task id": Hostile("GET", "/tasks/tsk_%00", None, 422, "task_id", "pattern"),
    "NUL in a job id": Hostile(
        "POST", "/admin/jobs/%00/cancel", None, 422, "job_id", "pattern", admin=True
    ),
    "NUL in a cursor": Hostile("GET", "/tasks?after=%00", None, 422, "after", "pattern"),
    "NUL in a tenant filter": Hostile(
        "GET", "/admin/jobs?tenant=%00", None, 422, "tenant", "pattern", admin=True
    ),
    "dots in a task id": Hostile("DELETE", "/tasks/tsk..x", None, 422, "task_id", "pattern"),
    "encoded slashes in a task id": Hostile("DELETE", "/tasks/..%2F..%2Fetc", None, 404),
    "surrogate in a name": invalid("/tasks", task(name="\ud800"), "name", "surrogate"),
    "surrogate in a label": invalid(
        "/tasks", task(labels=["positive", "\udfff"]), "labels[1]", "surrogate"
    ),
    "surrogate in an example label": invalid(
        "/tasks",
        task(examples=[{"text": "a", "label": "\ud800"}]),
        "examples[0].label",
        "surrogate",
    ),
    "surrogate in unlabeled text": invalid(
        "/tasks", task(unlabeled=["ok", "x\udc00"]), "unlabeled[1]", "surrogate"
    ),
    "surrogate in a template": invalid(
        "/tasks", task(template="{text} \ud800 {mask}"), "template", "surrogate"
    ),
    "surrogate in a label word key": invalid(
        "/tasks", task(label_words={"\ud800": "great"}), f"label_words.{LOST}.[key]", "surrogate"
    ),
    "surrogate in a hyperparameter name": invalid(
        "/tasks", task(hyperparameters={"\ud800": 1}), f"hyperparameters.{LOST}.[key]", "surrogate"
    ),
    "surrogate in a predict input": invalid(
        PREDICT, predict(["ok", "\ud83d"]), "inputs[1]", "surrogate"
    ),
    "surrogate in a tenant name": invalid(
        "/admin/tenants", encoded({"name": "\udfff"}), "name", "surrogate", admin=True
    ),
    "control characters are text": Hostile(
        "POST", PREDICT, predict(["tab\there\nbell\x07 \x1b[31m"]), 200
    ),
    "a surrogate pair is text": Hostile("POST", PREDICT, predict(["great \U0001f600"]), 200),
    # Megabyte strings.
    "1 MB name": invalid("/tasks", task(name="n" * MB), "name", "at most 200"),
    "1 MB label": invalid(
        "/tasks", task(labels=["positive", "l" * MB]), "labels[1]", "at most 100"
    ),
    "1 MB example text": invalid(
        "/tasks",
        task(examples=[{"text": "t" * MB, "label": "positive"}]),
        "examples[0].text",
        "at most 2000",
    ),
    "1 MB example label": invalid(
        "/tasks",
        task(examples=[{"text": "t", "label": "l" * MB}]),
        "examples[0].label",
        "not one of",
    ),
    "1 MB template": invalid(
        "/tasks", task(template="{text} {mask}" + "t" * MB), "template", "at most 500"
    ),
    "1 MB label word": invalid(
        "/tasks", task(label_words={"positive": "w" * MB}), "label_words.positive", "at most 50"
    ),
    "1 MB hyperparameter name": invalid(
        "/tasks", task(hyperparameters={"h" * MB: 1}), None, "unknown hyperparameter"
    ),
    "100k wrong items": invalid(PREDICT, predict([0] * 100_000), "inputs[0].str", "valid string"),
    "1 MB budget": invalid(
        "/tasks", task(hyperparameters={"budget": "b" * MB}), "hyperparameters.budget", "one of"
    ),
    "1 MB predict input": invalid(PREDICT, predict(["p" * MB]), "inputs[0]", "at most 2000"),
    "1 MB tenant name": invalid(
        "/admin/tenants", encoded({"name": "n" * MB}), "name", "at most 200", admin=True
    ),
    # Labels that differ only by Unicode normalisation.
    "NFC and NFD labels are duplicates": invalid(
        "/tasks",
        task(
            labels=[CAFE_NFC, CAFE_NFD],
            label_words=None,
            examples=[{"text": "a", "label": CAFE_NFC}, {"text": "b", "label": CAFE_NFD}],
        ),
        "labels",
        "NFC",
    ),
    "NFC and NFD label-word keys collide": invalid(
        "/tasks",
        task(labels=[CAFE_NFC, "bar"], label_words={CAFE_NFC: "great", CAFE_NFD: "bad"}),
        "label_words",
        "same label after Unicode NFC",
    ),
    # Templates and label words.
    "template with three masks": invalid(
        "/tasks", task(template="{text} {mask} {mask} {mask}"), "template", "found 3"
    ),
    "template with only text": invalid("/tasks", task(template="{text}"), "template", "found 0"),
    "template with text twice": invalid(
        "/tasks", task(template="{text} {mask} {text}"), "template", "{text} exactly once"
    ),
    "template with a capitalised mask": invalid(
        "/tasks", task(template="{text} {MASK}"), "template", "{MASK}"
    ),
    "empty template": invalid("/tasks", task(template=""), "template", "non-empty"),
    "label word of two words": invalid(
        "/tasks",
        task(label_words={"positive": "great fun", "negative": "terrible"}),
        "label_words.positive",
        "tokens",
    ),
    "label word that splits": invalid(
        "/tasks",
        task(label_words={"positive": "greatterrible", "negative": "terrible"}),
        "label_words.positive",
        "exactly one token",
    ),
    "blank label word": invalid(
        "/tasks",
        task(label_words={"positive": "  ", "negative": "bad"}),
        "label_words.positive",
        "empty",
    ),
    "two labels, one word": invalid(
        "/tasks",
        task(label_words={"positive": "great", "negative": "great"}),
        "label_words",
        "same token",
    ),
    # Unknown methods and hyperparameters.
    "method in capitals": invalid(
        "/tasks", task(method="LIST"), "method", "'list', 'prompt', 'classic' or 'contrastive'"
    ),
    "empty method": invalid("/tasks", task(method=""), "method", "'list'"),
    "dunder hyperparameter": invalid(
        "/tasks", task(hyperparameters={"__class__": 1}), "hyperparameters.__class__", "unknown"
    ),
    "hyperparameter as a string": invalid(
        "/tasks",
        task(hyperparameters={"teacher_lr": "0.1"}),
        "hyperparameters.teacher_lr",
        "finite number",
    ),
    "boolean steps": invalid(
        "/tasks", task(hyperparameters={"sessions": True}), "hyperparameters.sessions", "integer"
    ),
    "float steps": invalid(
        "/tasks", task(hyperparameters={"sessions": 1e308}), "hyperparameters.sessions", "integer"
    ),
    "null budget": invalid(
        "/tasks", task(hyperparameters={"budget": None}), "hyperparameters.budget", "one of"
    ),
    # Unknown routes and HTTP methods.
    "PATCH a task": Hostile("PATCH", "/tasks/{task}", b"{}", 405),
    "PUT the task list": Hostile("PUT", "/tasks", b"{}", 405),
    "a WebDAV method": Hostile("PROPFIND", "/tasks", None, 405),
    "an unknown route": Hostile("GET", "/tasks/{task}/secrets", None, 404),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request(target: Target, name: str) -> None:
    case = CASES[name]
    path = case.path.format(task=target.task_id, job=target.job_id)
    headers = {"content-type": "application/json", **(ADMIN if case.admin else target.tenant)}
    response = target.client.request(
        case.method, path, content=case.body, headers={**headers, **case.headers}
    )
    assert response.status_code == case.status, response.text[:1000]
    if case.status >= 400:
        assert_error_format(response)
        assert len(response.content) < MAX_ERROR_BYTES, f"{len(response.content)} bytes"
        error = response.json()["error"]
        if case.field is not None:
            assert error["details"][0]["field"] == case.field, error
        assert case.reason in error["message"], error


def test_a_label_written_decomposed_is_the_composed_label(target: Target) -> None:
    """Labels are stored in NFC: an example labelled with the NFD spelling trains the NFC
    label, and predictions name it in NFC."""
    body = task_body(
        labels=[CAFE_NFD, "bar"],
        label_words={CAFE_NFD: "great", "bar": "terrible"},
        examples=[
            {"text": "a great film", "label": CAFE_NFC},
            {"text": "a terrible film", "label": CAFE_NFD},
            {"text": "a terrible plot", "label": "bar"},
        ],
    )
    trained = train_task(target.client, target.tenant, **body)
    assert trained["labels"] == [CAFE_NFC, "bar"]
    assert trained["label_words"] == {CAFE_NFC: "great", "bar": "terrible"}
    response = target.client.post(
        f"/predict/{trained['id']}", json={"inputs": ["great"]}, headers=target.tenant
    )
    assert response.status_code == 200, response.text
    assert set(response.json()["predictions"][0]["scores"]) == {CAFE_NFC, "bar"}
