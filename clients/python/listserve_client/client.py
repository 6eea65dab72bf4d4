"""`Client`: the tenant API, synchronously (`AsyncClient` in aio.py is the same with `await`).

from listserve_client import Client

with Client("http://127.0.0.1:8000", api_key="lsk_...") as client:
    task = client.create_task("sentiment", ["positive", "negative"], examples, unlabeled)
    task = client.wait(task, progress=True)
    result = client.predict(task, ["What a delight."])
"""

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from listserve_client import calls, models
from listserve_client.calls import Call, ExampleLike, InputLike
from listserve_client.errors import NotFoundError, error_from
from listserve_client.progress import ProgressBar
from listserve_client.transport import RetryPolicy, SseParser, headers, retryable

DEFAULT_MAX_PREDICT_INPUTS = 64  # the server's LISTSERVE_MAX_PREDICT_INPUTS default
STREAM_READ_TIMEOUT_S = 60.0  # the server sends a keep-alive every 15 s
ADMIN = "/admin"


class _Http:
    """An HTTP connection pool with a key, and `send`: the retries around every call."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call) -> Any:
        """One call, retried while the server says waiting helps."""
        for attempt in range(self.retry.retries + 1):
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params or None
                )
            except httpx.ConnectError:
                if attempt == self.retry.retries:
                    raise
                time.sleep(self.retry.delay(attempt, None))
                continue
            if response.is_success:
                return call.parse(response.json() if response.content else None)
            error = error_from(response)
            if not retryable(response, error) or attempt == self.retry.retries:
                raise error
            time.sleep(self.retry.delay(attempt, error))
        raise AssertionError("unreachable")

    def _pages(self, job, after: int | None, prefix: str) -> Iterator[models.JobEvent]:
        while True:
            page = self.send(calls.events(job, after, prefix=prefix))
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id


class Client(_Http):
    """Every tenant route, typed. Requests answered 429/503 with `Retry-After` are retried
    (`RetryPolicy`); any other error is raised as a `ListserveError` subclass. Predict inputs
    beyond `max_predict_inputs` are sent in several requests, pinned to the version the first
    one got, and joined."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_predict_inputs: int = DEFAULT_MAX_PREDICT_INPUTS,
        **options: Any,
    ) -> None:
        """`options`: timeout (seconds), retry (`RetryPolicy`), transport (httpx)."""
        super().__init__(base_url, api_key, **options)
        self.max_predict_inputs = max_predict_inputs

    # Tasks.
    def create_task(
        self,
        name: str,
        labels: Sequence[str],
        examples: Sequence[ExampleLike],
        unlabeled: Sequence[str] = (),
        **options: Any,
    ) -> models.Task:
        """`options`: template, label_words, method, hyperparameters, evaluation."""
        return self.send(calls.create_task(name, labels, examples, unlabeled, **options))

    def task(self, task: str | models.Task) -> models.Task:
        return self.send(calls.task(task))

    def tasks(self, limit: int | None = None, after: str | None = None) -> models.TaskPage:
        return self.send(calls.tasks(limit, after))

    def delete_task(self, task: str | models.Task) -> None:
        self.send(calls.delete_task(task))

    # Predictions.
    def predict(
        self, task: str | models.Task, inputs: Sequence[InputLike], version: int | None = None
    ) -> models.PredictResult:
        results = []
        for chunk in calls.chunks(list(inputs), self.max_predict_inputs):
            results.append(self.send(calls.predict(task, chunk, version)))
            version = results[0].adapter_version
        return _joined(results)

    def predict_many(
        self, tasks: Sequence[str | models.Task], inputs: Sequence[InputLike]
    ) -> list[models.PredictResult]:
        """Every input under every task (one mixed batch on the server per request)."""
        per_request = self.max_predict_inputs // max(1, len(tasks))
        parts = [
            self.send(calls.predict_many(tasks, chunk)) for chunk in _chunk(inputs, per_request)
        ]
        return [_joined(list(by_task)) for by_task in zip(*parts, strict=True)]

    # More data, versions.
    def add_examples(
        self,
        task: str | models.Task,
        examples: Sequence[ExampleLike] = (),
        unlabeled: Sequence[str] = (),
        evaluation: Sequence[ExampleLike] = (),
    ) -> models.ExamplesAdded:
        return self.send(calls.add_examples(task, examples, unlabeled, evaluation))

    def retrain(self, task: str | models.Task, promote: str = "if_better") -> models.Job:
        return self.send(calls.retrain(task, promote))

    def versions(self, task: str | models.Task) -> models.Versions:
        return self.send(calls.versions(task))

    def promote(self, task: str | models.Task, version: int) -> models.Version:
        return self.send(calls.promote(task, version))

    def feedback(
        self,
        task: str | models.Task,
        label: str,
        prediction_id: str | models.Prediction | None = None,
        text: str | None = None,
        text_b: str | None = None,
    ) -> models.Feedback:
        """The right label for a prediction (its id) or for a text."""
        return self.send(calls.feedback(task, label, prediction_id, text, text_b))

    def suggestions(self, task: str | models.Task, limit: int = 10) -> models.Suggestions:
        return self.send(calls.suggestions(task, limit))

    # Jobs.
    def jobs(
        self, task: str | models.Task, limit: int | None = None, after: str | None = None
    ) -> models.JobPage:
        return self.send(calls.jobs(task, limit, after))

    def job(self, job: str | models.JobSummary) -> models.Job:
        return self.send(calls.job(job))

    def cancel(self, job: str | models.JobSummary) -> models.Job:
        return self.send(calls.cancel(job))

    def events(
        self, job: str | models.JobSummary, follow: bool = False, after: int | None = None
    ) -> Iterator[models.JobEvent]:
        """The job's events, oldest first; with `follow`, live until the job ends."""
        if follow:
            for item in self._follow(job, after, None):
                if isinstance(item, models.JobEvent):
                    yield item
            return
        yield from self._pages(job, after, "")

    def wait_job(
        self, job: str | models.JobSummary, progress: bool = False, timeout: float | None = None
    ) -> models.Job:
        """Follow the job's event stream until it ends; returns the ended job."""
        job_id = job if isinstance(job, str) else job.id
        bar = ProgressBar(job_id) if progress else None
        for item in self._follow(job_id, None, timeout):
            if isinstance(item, models.Job):
                if bar is not None:
                    bar.close(item)
                return item
            if bar is not None:
                bar(item)
        raise AssertionError("unreachable")

    def wait(
        self, task: str | models.Task, progress: bool = False, timeout: float | None = None
    ) -> models.Task:
        """Until the task's newest job has ended (training or a retrain); returns the task."""
        current = self.task(task)
        if current.job is not None and not current.job.done:
            self.wait_job(current.job.id, progress, timeout)
        return self.task(current.id)

    def _follow(self, job, after: int | None, timeout: float | None):
        """Events, then the ended `Job`; reconnects (resuming after the last event id) when a
        stream closes or drops before the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while deadline is None or time.monotonic() < deadline:
            request_headers = {"Accept": "text/event-stream"}
            if after is not None:
                request_headers["Last-Event-ID"] = str(after)
            try:
                with self._http.stream(
                    "GET",
                    calls.stream_path(job),
                    headers=request_headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S),
                ) as response:
                    if not response.is_success:
                        response.read()
                        error = error_from(response)
                        if not retryable(response, error) or failures >= self.retry.retries:
                            raise error
                        failures += 1
                        time.sleep(self.retry.delay(failures, error))
                        continue
                    for sse in SseParser().events(response.iter_lines()):
                        if sse.event == "end":
                            yield _ended(sse.data)
                            return
                        event = models.JobEvent.model_validate_json(sse.data)
                        after, failures = event.id, 0
                        yield event
            except httpx.TransportError:
                if failures >= self.retry.retries:
                    raise
                failures += 1
                time.sleep(self.retry.delay(failures, None))
        raise TimeoutError(f"job {job} did not end within {timeout} s")


class AdminClient(_Http):
    """The admin API (`LISTSERVE_ADMIN_TOKEN`): tenants, and every tenant's jobs."""

    def __init__(self, base_url: str, admin_token: str, **options: Any) -> None:
        super().__init__(base_url, admin_token, **options)

    def create_tenant(self, name: str) -> models.Tenant:
        """A new tenant; its `api_key` is shown only in this answer."""
        return self.send(calls.create_tenant(name))

    def jobs(
        self,
        status: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> models.JobPage:
        return self.send(calls.admin_jobs(status, tenant, limit, after))

    def job(self, job: str | models.JobSummary) -> models.Job:
        return self.send(calls.job(job, ADMIN))

    def events(
        self, job: str | models.JobSummary, after: int | None = None
    ) -> Iterator[models.JobEvent]:
        return self._pages(job, after, ADMIN)

    def cancel(self, job: str | models.JobSummary) -> models.Job:
        return self.send(calls.cancel(job, ADMIN))


def _chunk(items: Sequence, size: int) -> list[Sequence]:
    return calls.chunks(list(items), size)


def _joined(results: list[models.PredictResult]) -> models.PredictResult:
    first = results[0]
    predictions = [p for result in results for p in result.predictions]
    return first.model_copy(update={"predictions": predictions})


def _ended(data: str) -> models.Job:
    body = json.loads(data)
    if body.get("status") == "deleted":
        raise NotFoundError(404, "not_found", f"job {body.get('id')} was deleted")
    return models.Job.model_validate(body)
