"""`AsyncClient`: `Client`'s methods with `await`, for asyncio programs.

async with AsyncClient("http://127.0.0.1:8000", api_key="lsk_...") as client:
    results = await asyncio.gather(*(client.predict(task, batch) for batch in batches))
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from listserve_client import calls, models
from listserve_client.calls import Call, ExampleLike, InputLike
from listserve_client.client import (
    DEFAULT_MAX_PREDICT_INPUTS,
    STREAM_READ_TIMEOUT_S,
    _chunk,
    _ended,
    _joined,
)
from listserve_client.errors import error_from
from listserve_client.progress import ProgressBar
from listserve_client.transport import RetryPolicy, SseParser, headers, retryable


class AsyncClient:
    """Every tenant route, typed, on asyncio; retries, errors and chunking as `Client`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_predict_inputs: int = DEFAULT_MAX_PREDICT_INPUTS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.max_predict_inputs = max_predict_inputs
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call) -> Any:
        for attempt in range(self.retry.retries + 1):
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params or None
                )
            except httpx.ConnectError:
                if attempt == self.retry.retries:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, None))
                continue
            if response.is_success:
                return call.parse(response.json() if response.content else None)
            error = error_from(response)
            if not retryable(response, error) or attempt == self.retry.retries:
                raise error
            await asyncio.sleep(self.retry.delay(attempt, error))
        raise AssertionError("unreachable")

    async def create_task(
        self,
        name: str,
        labels: Sequence[str],
        examples: Sequence[ExampleLike],
        unlabeled: Sequence[str] = (),
        **options: Any,
    ) -> models.Task:
        return await self.send(calls.create_task(name, labels, examples, unlabeled, **options))

    async def task(self, task: str | models.Task) -> models.Task:
        return await self.send(calls.task(task))

    async def tasks(self, limit: int | None = None, after: str | None = None) -> models.TaskPage:
        return await self.send(calls.tasks(limit, after))

    async def delete_task(self, task: str | models.Task) -> None:
        await self.send(calls.delete_task(task))

    async def predict(
        self, task: str | models.Task, inputs: Sequence[InputLike], version: int | None = None
    ) -> models.PredictResult:
        results = []
        for chunk in calls.chunks(list(inputs), self.max_predict_inputs):
            results.append(await self.send(calls.predict(task, chunk, version)))
            version = results[0].adapter_version
        return _joined(results)

    async def predict_many(
        self, tasks: Sequence[str | models.Task], inputs: Sequence[InputLike]
    ) -> list[models.PredictResult]:
        per_request = self.max_predict_inputs // max(1, len(tasks))
        parts = [
            await self.send(calls.predict_many(tasks, chunk))
            for chunk in _chunk(inputs, per_request)
        ]
        return [_joined(list(by_task)) for by_task in zip(*parts, strict=True)]

    async def add_examples(
        self,
        task: str | models.Task,
        examples: Sequence[ExampleLike] = (),
        unlabeled: Sequence[str] = (),
        evaluation: Sequence[ExampleLike] = (),
    ) -> models.ExamplesAdded:
        return await self.send(calls.add_examples(task, examples, unlabeled, evaluation))

    async def retrain(self, task: str | models.Task, promote: str = "if_better") -> models.Job:
        return await self.send(calls.retrain(task, promote))

    async def versions(self, task: str | models.Task) -> models.Versions:
        return await self.send(calls.versions(task))

    async def promote(self, task: str | models.Task, version: int) -> models.Version:
        return await self.send(calls.promote(task, version))

    async def feedback(
        self,
        task: str | models.Task,
        label: str,
        prediction_id: str | models.Prediction | None = None,
        text: str | None = None,
        text_b: str | None = None,
    ) -> models.Feedback:
        return await self.send(calls.feedback(task, label, prediction_id, text, text_b))

    async def suggestions(self, task: str | models.Task, limit: int = 10) -> models.Suggestions:
        return await self.send(calls.suggestions(task, limit))

    async def jobs(
        self, task: str | models.Task, limit: int | None = None, after: str | None = None
    ) -> models.JobPage:
        return await self.send(calls.jobs(task, limit, after))

    async def job(self, job: str | models.JobSummary) -> models.Job:
        return await self.send(calls.job(job))

    async def cancel(self, job: str | models.JobSummary) -> models.Job:
        return await self.send(calls.cancel(job))

    async def events(
        self, job: str | models.JobSummary, follow: bool = False, after: int | None = None
    ) -> AsyncIterator[models.JobEvent]:
        if follow:
            async for item in self._follow(job, after, None):
                if isinstance(item, models.JobEvent):
                    yield item
            return
        while True:
            page = await self.send(calls.events(job, after))
            for event in page.data:
                yield event
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    async def wait_job(
        self, job: str | models.JobSummary, progress: bool = False, timeout: float | None = None
    ) -> models.Job:
        job_id = job if isinstance(job, str) else job.id
        bar = ProgressBar(job_id) if progress else None
        async for item in self._follow(job_id, None, timeout):
            if isinstance(item, models.Job):
                if bar is not None:
                    bar.close(item)
                return item
            if bar is not None:
                bar(item)
        raise AssertionError("unreachable")

    async def wait(
        self, task: str | models.Task, progress: bool = False, timeout: float | None = None
    ) -> models.Task:
        current = await self.task(task)
        if current.job is not None and not current.job.done:
            await self.wait_job(current.job.id, progress, timeout)
        return await self.task(current.id)

    async def _follow(self, job, after: int | None, timeout: float | None):
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while deadline is None or time.monotonic() < deadline:
            request_headers = {"Accept": "text/event-stream"}
            if after is not None:
                request_headers["Last-Event-ID"] = str(after)
            try:
                async with self._http.stream(
                    "GET",
                    calls.stream_path(job),
                    headers=request_headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S),
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        error = error_from(response)
                        if not retryable(response, error) or failures >= self.retry.retries:
                            raise error
                        failures += 1
                        await asyncio.sleep(self.retry.delay(failures, error))
                        continue
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        sse = parser.feed(line)
                        if sse is None:
                            continue
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
                await asyncio.sleep(self.retry.delay(failures, None))
        raise TimeoutError(f"job {job} did not end within {timeout} s")
