"""Structured logs: one JSON object per line, the request id on every line of a request, and
no texts or keys in them."""

import json
import logging

from service.logs import JsonFormatter


def test_request_logs_are_json_with_request_id_and_no_secrets(api, json_log) -> None:
    response = api.client.post("/admin/tenants", json={"name": "acme"}, headers=api.admin)
    key = response.json()["api_key"]
    tenant = {"Authorization": f"Bearer {key}"}
    secret_text = "zebra-marker-text that must never be logged"
    task = api.ready_task(
        tenant,
        unlabeled=[secret_text],
        examples=[
            {"text": "great " + secret_text, "label": "positive"},
            {"text": "terrible film", "label": "negative"},
        ],
    )
    predicted = api.client.post(
        f"/predict/{task['id']}",
        json={"inputs": [secret_text]},
        headers={**tenant, "X-Request-ID": "req-12345"},
    )
    assert predicted.status_code == 200
    assert predicted.headers["x-request-id"] == "req-12345"
    generated = api.client.get("/health").headers["x-request-id"]
    assert len(generated) == 32

    output = json_log.getvalue()
    records = [json.loads(line) for line in output.splitlines()]
    access = [r for r in records if r["logger"] == "service.access"]
    mine = [r for r in access if r.get("request_id") == "req-12345"]
    assert len(mine) == 1
    assert mine[0]["route"] == "/predict/{task_id}" and mine[0]["status"] == 200
    assert mine[0]["tenant_id"].startswith("tnt_") and mine[0]["duration_ms"] > 0
    assert any(r["message"] == "adapter registered" and r.get("job_id") for r in records)
    for forbidden in (secret_text, "zebra-marker", key, api.admin["Authorization"].split()[1]):
        assert forbidden not in output


def test_exceptions_are_logged_as_one_json_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "failed here" and "ValueError: boom" in entry["exception"]
    assert "\n" not in formatter.format(record)


def test_generated_request_ids_are_unique_and_need_no_system_call(monkeypatch) -> None:
    """uuid4 reads os.urandom, which releases the GIL on the event loop of every request."""
    from service.api import middleware

    def no_urandom(size: int) -> bytes:
        raise AssertionError("a request id read os.urandom")

    monkeypatch.setattr(middleware.os, "urandom", no_urandom)
    ids = {middleware._request_id({"headers": []}) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_request_ids() -> None:
    import os

    from service.api import middleware

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, middleware._request_id({"headers": []}).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 32 and child != middleware._request_id({"headers": []})
