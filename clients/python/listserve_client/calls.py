"""Every tenant and admin route as a `Call`: method, path, body, query and how to read the
answer. `Client` and `AsyncClient` send the same calls, so the two cannot drift apart."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from listserve_client import models

ExampleLike = models.Example | dict | tuple
InputLike = str | dict | tuple


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    parse: Callable[[Any], Any] = lambda body: body


def _id(value: str | models.Task | models.JobSummary) -> str:
    """An id, or the object that has it; quoted for the path."""
    return quote(value if isinstance(value, str) else value.id, safe="")


def example(item: ExampleLike) -> dict:
    """`Example`, `{"text", "label"[, "text_b"]}` or `(text, label)` -> the JSON body item."""
    if isinstance(item, models.Example):
        return item.model_dump(exclude_none=True, include={"text", "label", "text_b"})
    if isinstance(item, tuple):
        text, label = item
        return {"text": text, "label": label}
    return dict(item)


def predict_input(item: InputLike) -> str | dict:
    """A text, `{"text", "text_b"}` or `(text, text_b)` for pair tasks."""
    if isinstance(item, tuple):
        text, text_b = item
        return {"text": text, "text_b": text_b}
    return item


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def create_task(
    name: str,
    labels: Sequence[str],
    examples: Iterable[ExampleLike],
    unlabeled: Iterable[str] = (),
    **options: Any,
) -> Call:
    """`options`: template, label_words, method, hyperparameters, evaluation, ..."""
    body = {
        "name": name,
        "labels": list(labels),
        "examples": [example(e) for e in examples],
        "unlabeled": list(unlabeled),
        **options,
    }
    if "evaluation" in body:
        body["evaluation"] = [example(e) for e in body["evaluation"]]
    return Call("POST", "/tasks", body, parse=models.Task.model_validate)


def task(task_id) -> Call:
    return Call("GET", f"/tasks/{_id(task_id)}", parse=models.Task.model_validate)


def tasks(limit: int | None = None, after: str | None = None) -> Call:
    return Call(
        "GET",
        "/tasks",
        params=_params(limit=limit, after=after),
        parse=models.TaskPage.model_validate,
    )


def delete_task(task_id) -> Call:
    return Call("DELETE", f"/tasks/{_id(task_id)}", parse=lambda body: None)


def predict(task_id, inputs: Sequence[InputLike], version: int | None = None) -> Call:
    body = {"inputs": [predict_input(item) for item in inputs]}
    return Call(
        "POST",
        f"/predict/{_id(task_id)}",
        body,
        _params(version=version),
        models.PredictResult.model_validate,
    )


def predict_many(task_ids: Sequence, inputs: Sequence[InputLike]) -> Call:
    body = {"tasks": [_id(t) for t in task_ids], "inputs": [predict_input(i) for i in inputs]}
    return Call(
        "POST",
        "/predict",
        body,
        parse=lambda answer: [models.PredictResult.model_validate(r) for r in answer["results"]],
    )


def add_examples(
    task_id,
    examples: Iterable[ExampleLike] = (),
    unlabeled: Iterable[str] = (),
    evaluation: Iterable[ExampleLike] = (),
) -> Call:
    body = {
        "examples": [example(e) for e in examples],
        "unlabeled": list(unlabeled),
        "evaluation": [example(e) for e in evaluation],
    }
    return Call(
        "POST", f"/tasks/{_id(task_id)}/examples", body, parse=models.ExamplesAdded.model_validate
    )


def retrain(task_id, promote: str = "if_better") -> Call:
    return Call(
        "POST",
        f"/tasks/{_id(task_id)}/retrain",
        {"promote": promote},
        parse=models.Job.model_validate,
    )


def versions(task_id) -> Call:
    return Call("GET", f"/tasks/{_id(task_id)}/versions", parse=models.Versions.model_validate)


def promote(task_id, version: int) -> Call:
    return Call(
        "POST",
        f"/tasks/{_id(task_id)}/versions/{int(version)}/promote",
        parse=models.Version.model_validate,
    )


def feedback(
    task_id,
    label: str,
    prediction_id: str | models.Prediction | None = None,
    text: str | None = None,
    text_b: str | None = None,
) -> Call:
    if isinstance(prediction_id, models.Prediction):
        prediction_id = prediction_id.id
    body = _params(prediction_id=prediction_id, text=text, text_b=text_b)
    body["label"] = label
    return Call(
        "POST", f"/tasks/{_id(task_id)}/feedback", body, parse=models.Feedback.model_validate
    )


def suggestions(task_id, limit: int = 10) -> Call:
    return Call(
        "GET",
        f"/tasks/{_id(task_id)}/suggestions",
        params={"limit": limit},
        parse=models.Suggestions.model_validate,
    )


def jobs(task_id, limit: int | None = None, after: str | None = None) -> Call:
    return Call(
        "GET",
        f"/tasks/{_id(task_id)}/jobs",
        params=_params(limit=limit, after=after),
        parse=models.JobPage.model_validate,
    )


def job(job_id, prefix: str = "") -> Call:
    return Call("GET", f"{prefix}/jobs/{_id(job_id)}", parse=models.Job.model_validate)


def events(job_id, after: int | None = None, limit: int | None = None, prefix: str = "") -> Call:
    return Call(
        "GET",
        f"{prefix}/jobs/{_id(job_id)}/events",
        params=_params(after=after, limit=limit),
        parse=models.EventPage.model_validate,
    )


def cancel(job_id, prefix: str = "") -> Call:
    return Call("POST", f"{prefix}/jobs/{_id(job_id)}/cancel", parse=models.Job.model_validate)


def create_tenant(name: str) -> Call:
    return Call("POST", "/admin/tenants", {"name": name}, parse=models.Tenant.model_validate)


def admin_jobs(
    status: str | None = None,
    tenant: str | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> Call:
    return Call(
        "GET",
        "/admin/jobs",
        params=_params(status=status, tenant=tenant, limit=limit, after=after),
        parse=models.JobPage.model_validate,
    )


def stream_path(job_id) -> str:
    return f"/jobs/{_id(job_id)}/events"


def chunks(items: Sequence, size: int) -> list[Sequence]:
    """`items` cut into runs of at most `size` (at least one run, so an empty request still
    reaches the server and gets its 422)."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)] or [items]
