"""Fixtures for the fuzzing and security tests: the real app served over real HTTP (uvicorn on
a free local port, so the fuzzer sees exactly what a client sees, timeouts included), plus the
tiny RoBERTa backbone and one trained task to aim requests at."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import requests
import uvicorn

from service.api.app import create_app
from service.settings import Settings
from tests.service.conftest import ADMIN_TOKEN, task_body, wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass(frozen=True)
class LiveServer:
    """A running service: its base URL and the app object (for its settings and services)."""

    url: str
    app: object

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@contextmanager
def live_server(settings: Settings, timeout: float = 60.0) -> Iterator[LiveServer]:
    """Serve `create_app(settings)` with uvicorn in a thread until the block ends; waits for
    /ready so every test starts against a loaded backbone."""
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout, "uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        live = LiveServer(f"http://127.0.0.1:{port}", app)
        with live.client() as client:
            wait_until(lambda: client.get("/ready").status_code == 200, timeout, "ready")
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def assert_error_format(response: httpx.Response | requests.Response) -> None:
    """`{"error": {"type", "message", "details"}}`; a 422 lists `{"field", "message"}` details
    and its message leads with the first field."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "message", "details"}, error
    assert isinstance(error["type"], str) and error["type"], error
    assert isinstance(error["message"], str) and error["message"], error
    if response.status_code == 422:
        details = error["details"]
        assert isinstance(details, list) and details, error
        for detail in details:
            assert set(detail) == {"field", "message"} and all(detail.values()), error
        assert error["message"].startswith(f"{details[0]['field']}: "), error


def create_tenant(client: httpx.Client, name: str) -> dict[str, str]:
    """A new tenant's `Authorization` header (its key is only ever seen here)."""
    response = client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def train_task(client: httpx.Client, headers: dict[str, str], **overrides) -> dict:
    """Create a task with the tiny fast training budget and wait until it is ready."""
    response = client.post("/tasks", json=task_body(**overrides), headers=headers)
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]

    def settled() -> dict | None:
        task = client.get(f"/tasks/{task_id}", headers=headers).json()
        return task if task["status"] != "training" else None

    task = wait_until(settled, 60.0, f"task {task_id} to train")
    assert task["status"] == "ready", task
    return task
