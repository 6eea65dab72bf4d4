"""Fixtures for the service tests: real SQLite files, a real PostgreSQL schema per test, and
running apps (real backbone load, real in-process training) on the tiny RoBERTa."""

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.registry.db import Database
from service.settings import Settings

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ADMIN_TOKEN = "test-admin-token"
FAST_TRAINING = {
    "budget": "fast",
    "teacher_steps": 5,
    "sessions": 1,
    "unlabeled_steps": 3,
    "labeled_steps": 2,
}
SLOW_TRAINING = {"budget": "fast", "teacher_steps": 20000, "sessions": 0}


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema in the shared `test` database, dropped afterwards, so parallel runs and
    other tests never see each other's tables. Yields a URL whose search_path is that schema."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = PG_SERVER.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each registry test runs once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
    else:
        with pg_schema() as url:
            yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


def service_settings(root: Path, backbone: Path, **overrides) -> Settings:
    values = {
        "backbone": str(backbone),
        "device": "cpu",
        "database_url": f"sqlite:///{root / 'listserve.sqlite'}",
        "store": root / "adapters",
        "admin_token": ADMIN_TOKEN,
        "heartbeat_seconds": 0.1,
        "progress_interval_seconds": 0.05,
        "sweep_interval_seconds": 1.0,
        "max_wait_ms": 1.0,
        **overrides,
    }
    return Settings(**values)


class Api:
    """An HTTP client (a TestClient, or httpx against a real server) plus the few steps nearly
    every test repeats."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @property
    def services(self):
        return self.client.app.state.services

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: self.client.get("/ready").status_code == 200, timeout, "ready")

    def tenant(self, name: str = "acme") -> dict[str, str]:
        response = self.client.post("/admin/tenants", json={"name": name}, headers=self.admin)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['api_key']}"}

    def create_task(self, headers: dict, **overrides) -> dict:
        response = self.client.post("/tasks", json=task_body(**overrides), headers=headers)
        assert response.status_code == 202, response.text
        return response.json()

    def wait_task(self, headers: dict, task_id: str, timeout: float = 60.0) -> dict:
        def settled() -> dict | None:
            task = self.client.get(f"/tasks/{task_id}", headers=headers).json()
            return task if task["status"] != "training" else None

        return wait_until(settled, timeout, f"task {task_id} to finish training")

    def wait_job(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
        def reached() -> dict | None:
            job = self.client.get(f"/admin/jobs/{job_id}", headers=self.admin).json()
            return job if job["status"] in statuses else None

        return wait_until(reached, timeout, f"job {job_id} to reach {statuses}")

    def ready_task(self, headers: dict, **overrides) -> dict:
        task = self.create_task(headers, **overrides)
        done = self.wait_task(headers, task["id"])
        assert done["status"] == "ready", done
        return done

    def predict(self, headers: dict, task_id: str, inputs: list, with_ids: bool = False) -> dict:
        """The answer; without each prediction's `id` unless asked, since an id carries the
        second it was issued and tests compare answers from different moments."""
        response = self.client.post(f"/predict/{task_id}", json={"inputs": inputs}, headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        if not with_ids:
            for prediction in answer["predictions"]:
                assert prediction.pop("id").startswith("prd_")
        return answer


def task_body(**overrides) -> dict:
    body = {
        "name": "sentiment",
        "labels": ["positive", "negative"],
        "label_words": {"positive": "great", "negative": "terrible"},
        "examples": [
            {"text": "a great and fun movie", "label": "positive"},
            {"text": "superb acting and a lovely story", "label": "positive"},
            {"text": "a terrible and boring film", "label": "negative"},
            {"text": "dull plot with awful music", "label": "negative"},
        ],
        "unlabeled": ["good film", "bad ending", "nice cast", "weak story", "fun show"],
        "hyperparameters": FAST_TRAINING,
    }
    body.update(overrides)
    return body


def wait_until(check: Callable, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def running_api(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        api.wait_ready()
        yield api


@pytest.fixture
def make_api(tmp_path: Path, tiny_roberta_path: Path):
    """Start an app on this test's own SQLite file and store; several calls over one root
    share them (that is how the restart test restarts)."""

    @contextmanager
    def factory(root: Path | None = None, **overrides) -> Iterator[Api]:
        settings = service_settings(root or tmp_path, tiny_roberta_path, **overrides)
        with running_api(settings) as api:
            yield api

    return factory


@pytest.fixture
def api(make_api) -> Iterator[Api]:
    with make_api() as running:
        yield running
