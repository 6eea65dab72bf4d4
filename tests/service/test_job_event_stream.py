"""`GET /jobs/{id}/events` with `Accept: text/event-stream`, over real HTTP (uvicorn on a port)
on SQLite and PostgreSQL: each event arrives while the job runs, `end` carries the ended job,
`Last-Event-ID` resumes, an event another process writes to the registry is streamed too, and
an id that commits after a higher one is still sent once."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest

from service.api.event_stream import SentEvents
from service.registry.db import Database
from service.registry.jobs import add_event
from tests.reliability.conftest import LiveServer, create_tenant, live_server, train_task
from tests.service.conftest import SLOW_TRAINING, pg_schema, service_settings, task_body

STREAM = {"Accept": "text/event-stream"}


@dataclass
class Event:
    event: str
    id: int | None
    data: dict


def read_events(lines: Iterator[str]) -> Iterator[Event]:
    """The text/event-stream format as a browser reads it (comments and `retry` skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                event_id = fields.get("id")
                yield Event(
                    fields.get("event", "message"),
                    int(event_id) if event_id else None,
                    json.loads(fields["data"]),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


@pytest.fixture
def live(request, database_url: str, tmp_path, tiny_roberta_path) -> Iterator[LiveServer]:
    overrides = getattr(request, "param", {})
    settings = service_settings(
        tmp_path,
        tiny_roberta_path,
        database_url=database_url,
        event_poll_seconds=0.05,
        **overrides,
    )
    with live_server(settings) as server:
        yield server


def slow_job(client: httpx.Client, tenant: dict) -> tuple[str, str]:
    response = client.post("/tasks", json=task_body(hyperparameters=SLOW_TRAINING), headers=tenant)
    assert response.status_code == 202, response.text
    return response.json()["id"], response.json()["job"]["id"]


def test_events_stream_live_then_end_with_the_job(live: LiveServer) -> None:
    with live.client() as client:
        tenant = create_tenant(client, "acme")
        _, job_id = slow_job(client, tenant)
        seen: list[Event] = []
        running_while_streaming = False
        with client.stream("GET", f"/jobs/{job_id}/events", headers={**tenant, **STREAM}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for event in read_events(stream.iter_lines()):
                seen.append(event)
                progress = [e for e in seen if e.event == "progress"]
                if len(progress) == 3 and event.event == "progress":  # live: still running
                    job = client.get(f"/jobs/{job_id}", headers=tenant).json()
                    running_while_streaming = job["status"] == "running"
                    cancel = client.post(f"/jobs/{job_id}/cancel", headers=tenant)
                    assert cancel.status_code == 202, cancel.text
        assert running_while_streaming
        kinds = [e.event for e in seen]
        assert kinds[:2] == ["queued", "started"] and kinds[-1] == "end"
        assert "cancel_requested" in kinds and kinds[-2] == "cancelled"
        ids = [e.id for e in seen[:-1]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(e.data["id"] == e.id and e.data["kind"] == e.event for e in seen[:-1])
        end = seen[-1]
        assert end.id is None and end.data["id"] == job_id and end.data["status"] == "cancelled"

        # the same events, as the JSON page a client without the header gets
        page = client.get(f"/jobs/{job_id}/events", params={"limit": 1000}, headers=tenant).json()
        assert [e["id"] for e in page["data"]] == ids


def test_last_event_id_resumes_and_the_stream_is_the_tenants_own(live: LiveServer) -> None:
    with live.client() as client:
        tenant = create_tenant(client, "acme")
        job_id = train_task(client, tenant)["job"]["id"]
        url = f"/jobs/{job_id}/events"
        with client.stream("GET", url, headers={**tenant, **STREAM}) as stream:
            every = list(read_events(stream.iter_lines()))
        assert every[-2].event == "succeeded" and every[-1].event == "end"
        resume_after = every[2].id
        with client.stream(
            "GET", url, headers={**tenant, **STREAM, "Last-Event-ID": str(resume_after)}
        ) as stream:
            resumed = list(read_events(stream.iter_lines()))
        assert [e.id for e in resumed[:-1]] == [e.id for e in every[3:-1]]
        with client.stream(
            "GET", url, params={"after": resume_after}, headers={**tenant, **STREAM}
        ) as stream:
            assert [e.id for e in read_events(stream.iter_lines())] == [e.id for e in resumed]

        bad = client.get(url, headers={**tenant, **STREAM, "Last-Event-ID": "soon"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "Last-Event-ID"
        other = create_tenant(client, "other")
        assert client.get(url, headers={**other, **STREAM}).status_code == 404


@pytest.mark.parametrize("live", [{"event_stream_max_seconds": 0.5}], indirect=True)
def test_a_stream_closes_after_its_time_and_resuming_misses_nothing(live: LiveServer) -> None:
    with live.client() as client:
        tenant = create_tenant(client, "acme")
        _, job_id = slow_job(client, tenant)
        url = f"/jobs/{job_id}/events"
        with client.stream("GET", url, headers={**tenant, **STREAM}) as stream:
            first = list(read_events(stream.iter_lines()))  # closes by itself, no end event
        assert first and "end" not in [e.event for e in first]
        assert client.post(f"/jobs/{job_id}/cancel", headers=tenant).status_code == 202
        headers = {**tenant, **STREAM, "Last-Event-ID": str(first[-1].id)}
        rest: list[Event] = []
        while not rest or rest[-1].event != "end":
            with client.stream("GET", url, headers=headers) as stream:
                rest += list(read_events(stream.iter_lines()))
            headers["Last-Event-ID"] = str(max(e.id for e in first + rest if e.id is not None))
        page = client.get(url, params={"limit": 1000}, headers=tenant).json()["data"]
        assert [e.id for e in first + rest[:-1]] == [e["id"] for e in page]


def test_an_event_written_by_another_process_is_streamed(live: LiveServer, database_url) -> None:
    """The stream follows the table: what a Celery worker elsewhere writes reaches it."""
    with live.client() as client:
        tenant = create_tenant(client, "acme")
        _, job_id = slow_job(client, tenant)
        outside = Database(database_url)  # its own engine and connections, like a worker's
        try:

            def write_later() -> None:
                time.sleep(0.5)
                with outside.session() as session:
                    add_event(session, job_id, "note", {"from": "elsewhere"})

            writer = threading.Thread(target=write_later)
            writer.start()
            with client.stream("GET", f"/jobs/{job_id}/events", headers={**tenant, **STREAM}) as s:
                for event in read_events(s.iter_lines()):
                    if event.event == "note":
                        assert event.data["data"] == {"from": "elsewhere"}
                        break
            writer.join()
        finally:
            outside.dispose()
        assert client.post(f"/jobs/{job_id}/cancel", headers=tenant).status_code == 202


def events(*ids: int) -> list:
    return [SimpleNamespace(id=i) for i in ids]


def test_an_id_committed_late_is_sent_once_and_the_floor_trails_by_the_settle_time() -> None:
    sent = SentEvents(after=10, settle_seconds=5.0)
    assert [e.id for e in sent.fresh(events(11, 13), now=0.0)] == [11, 13]
    assert (sent.floor, sent.high) == (10, 13)
    # 12 commits after 13 was seen: it is still above the floor, so it is sent, once
    assert [e.id for e in sent.fresh(events(11, 12, 13, 14), now=1.0)] == [12, 14]
    assert sent.fresh(events(12, 13, 14), now=2.0) == []
    sent.fresh([], now=5.5)  # 5 s after the read that saw 13, not yet after the one of 14
    assert sent.floor == 13 and sent.sent == {14}
    assert sent.fresh(events(9, 10, 13), now=7.0) == []  # at or below the floor: never again


def test_postgresql_commit_order_does_not_lose_an_event() -> None:
    """Two writers: the first takes the lower id but commits after the second. A stream that
    read the higher one still gets the lower one from its look back."""
    from sqlalchemy import select

    from service.registry import jobs, tasks, tenants
    from service.registry.models import JobEvent
    from tests.service.test_registry import new_task

    with pg_schema() as url:
        database = Database(url)
        database.migrate()
        try:
            with database.session() as session:
                tenant, _ = tenants.create_tenant(session, "acme")
            with database.session() as session:
                quotas = tasks.Quotas(10, 10)
                _, job = tasks.create_task(session, new_task(tenant.id), quotas, 3)
            with database.session() as session:
                start = session.scalar(select(JobEvent.id).where(JobEvent.job_id == job.id))
            sent = SentEvents(after=start)
            slow = database._sessions()
            add_event(slow, job.id, "progress", {"n": 1})
            slow.flush()  # its id is taken, not committed
            with database.session() as session:
                add_event(session, job.id, "progress", {"n": 2})
            with database.read_session() as session:
                seen = jobs.list_events(session, job.id, sent.high, 100)[0]
            assert [e.data["n"] for e in sent.fresh(seen, now=0.0)] == [2]
            slow.commit()
            slow.close()
            with database.read_session() as session:
                late = jobs.events_between(session, job.id, sent.floor, sent.high)
                newer = jobs.list_events(session, job.id, sent.high, 100)[0]
            assert [e.data["n"] for e in sent.fresh(late + newer, now=1.0)] == [1]
        finally:
            database.dispose()
