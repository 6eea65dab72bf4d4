"""What both clients do around each request: authenticate, retry 429/503 while the server says
waiting helps (`Retry-After`), raise the error body as a typed exception, and read a job's
Server-Sent Events stream.

A 429 or 503 is retried only when it carries `Retry-After`: the service sends it for a rate
limit, a full queue, an active-jobs quota, a service not ready yet and a registry that is down
-- answers where the request did nothing -- and not for a task quota (waiting cannot help).
`runner_unavailable` is never retried: the task was saved and its job starts by itself, so a
second `POST /tasks` would make a second task. Without `Retry-After` the client backs off
exponentially (with jitter) between `backoff` and `max_backoff` seconds.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from listserve_client.errors import ListserveError

RETRIED = (429, 503)
NEVER_RETRIED = {"runner_unavailable"}


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int, error: ListserveError | None) -> float:
        """Seconds to wait before try `attempt + 1`: the server's `Retry-After`, else an
        exponential backoff with jitter."""
        if error is not None and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def retryable(response: httpx.Response, error: ListserveError) -> bool:
    return (
        response.status_code in RETRIED
        and error.retry_after is not None
        and error.type not in NEVER_RETRIED
    )


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "listserve-client/0.1"}


@dataclass
class SseEvent:
    """One Server-Sent Event: `event` (the job event's kind, or `end`), `id`, `data` text."""

    event: str = "message"
    id: str | None = None
    data: str = ""


class SseParser:
    """The text/event-stream format, line by line (WHATWG HTML, "server-sent events")."""

    def __init__(self) -> None:
        self._event = SseEvent()
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        """One line (without its newline); returns an event when a blank line ends one."""
        if not line:
            if not self._data:
                self._event = SseEvent()
                return None
            event, self._event = self._event, SseEvent()
            event.data, self._data = "\n".join(self._data), []
            return event
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event.event = value
        elif name == "id":
            self._event.id = value
        return None

    def events(self, lines: Iterator[str]) -> Iterator[SseEvent]:
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event
