"""A job's events as Server-Sent Events, following the `job_events` table.

Every progress and lifecycle event is already a registry row, whichever process wrote it (this
API, another replica, a Celery worker), so the stream reads the table every
`event_poll_seconds` and sends what is new: `id: <event id>`, `event: <kind>`, `data: <event
JSON>`. Once the job has ended and its last event is sent, a final `event: end` carries the job
itself (no `id`, so a client resuming with `Last-Event-ID` never skips a real event) and the
stream closes. An idle stream sends a comment line every `event_keepalive_seconds`; a stream
closes after `event_stream_max_seconds` (the client resumes with `Last-Event-ID`), so no open
stream holds a server's shutdown up for long.

Event ids come from one sequence but PostgreSQL may commit them out of order (a cancel written
by the API while the worker writes progress), so reading "ids above the last one sent" could
skip an id that commits late. The stream reads above a `floor` that trails the ids it has seen
by `SETTLE_SECONDS` (longer than any event's transaction) and drops the ones already sent.
"""

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool

from service.api.views import event_view, job_view
from service.registry import jobs as job_registry
from service.registry.db import Database
from service.registry.models import JobEvent
from service.registry.states import FINAL_JOB_STATUSES

SETTLE_SECONDS = 5.0
PAGE = 500
RETRY_MS = 1000


class SentEvents:
    """Which event ids a stream has sent: everything up to `floor`, and the ids in `sent`
    between it and `high` (the highest id sent). The floor trails `high` by settle seconds."""

    def __init__(self, after: int, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.floor = self.high = after
        self.settle_seconds = settle_seconds
        self.sent: set[int] = set()
        self._marks: deque[tuple[float, int]] = deque()  # (when, `high` then)

    def fresh(self, events: list[JobEvent], now: float) -> list[JobEvent]:
        """The events not sent yet, in id order; moves the floor up to what `high` was settle
        seconds ago."""
        new = sorted(
            (e for e in events if e.id > self.floor and e.id not in self.sent),
            key=lambda e: e.id,
        )
        self.sent.update(event.id for event in new)
        self.high = max([self.high, *self.sent])
        self._marks.append((now, self.high))
        while self._marks and self._marks[0][0] <= now - self.settle_seconds:
            self.floor = max(self.floor, self._marks.popleft()[1])
        self.sent = {event_id for event_id in self.sent if event_id > self.floor}
        return new


def sse(event: str, data: dict, event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", f"data: {json.dumps(jsonable_encoder(data))}"]
    return "\n".join(lines) + "\n\n"


def _poll(database: Database, job_id: str, sent: SentEvents) -> tuple[dict | None, list, bool]:
    """The job (its status read first, so an ended job's last events are in the same read),
    the events above the highest one sent, and any that committed late below it."""
    with database.read_session() as session:
        job = job_registry.get_job(session, job_id)
        view = job_view(job) if job is not None else None
        late = job_registry.events_between(session, job_id, sent.floor, sent.high)
        events, more = job_registry.list_events(session, job_id, sent.high, PAGE)
    return view, late + events, more


async def job_events(
    database: Database,
    job_id: str,
    after: int,
    poll_seconds: float,
    keepalive_seconds: float,
    max_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """The stream's text, chunk by chunk, until the job's end (or `max_seconds`)."""
    sent = SentEvents(after)
    started = last_write = clock()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        job, events, more = await run_in_threadpool(_poll, database, job_id, sent)
        for event in sent.fresh(events, clock()):
            last_write = clock()
            yield sse(event.kind, event_view(event), event.id)
        if job is None or (job["status"] in FINAL_JOB_STATUSES and not more):
            yield sse("end", job or {"id": job_id, "status": "deleted"})
            return
        if more:
            continue
        now = clock()
        if now - started >= max_seconds:
            return
        if now - last_write >= keepalive_seconds:
            last_write = now
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_seconds)
