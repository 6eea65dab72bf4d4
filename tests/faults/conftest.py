"""Real processes for fault injection: `listserve serve` subprocesses driven over HTTP, a fresh
PostgreSQL database per test, the cluster stopped and started, a tiny tmpfs, and client load
that records every answer so a test can say exactly what each client saw."""

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from pydantic import SecretStr

from service.registry.db import Database
from service.settings import Settings
from tests.processes import LoggedProcess
from tests.service.conftest import PG_SERVER, Api, wait_until

LISTSERVE = Path(sys.executable).parent / "listserve"
PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The process environment that makes a subprocess read exactly `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTSERVE_")}
    for name, value in settings.flat_values().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"LISTSERVE_{name.upper()}"] = str(value)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return env


class ServerProcess(LoggedProcess):
    """`listserve serve` in a subprocess (its output in a log file), and an `Api` over HTTP."""

    stop_timeout = 30.0

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__([str(LISTSERVE), "serve"], settings_env(settings), log_path)
        self.settings = settings
        self.url = f"http://{settings.host}:{settings.port}"
        self.api = Api(httpx.Client(base_url=self.url, timeout=30))

    def wait_ready(self, timeout: float = 120.0) -> Api:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()[-3000:]}")
            try:
                return self.api.client.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, f"listserve serve {self.pid} to be ready")
        return self.api

    def stop(self) -> None:
        super().stop()
        self.api.client.close()


@contextmanager
def registry(url: str) -> Iterator[Database]:
    """The test's own view of the registry a server uses, to check it from outside."""
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (connections forced out)."""
    name = f"fault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(PG_SERVER), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        wait_until(postgres_accepts, 60, "PostgreSQL to accept connections")
        with psycopg.connect(libpq(PG_SERVER), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def libpq(url: str) -> str:
    """The psycopg connection string for an SQLAlchemy `postgresql+psycopg://` URL."""
    return url.replace("postgresql+psycopg", "postgresql", 1)


def postgres_accepts() -> bool:
    try:
        with psycopg.connect(libpq(PG_SERVER), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run([*PG_CLUSTER, version, "main", action], check=True, timeout=120)


@contextmanager
def postgres_stopped() -> Iterator[None]:
    """Stop the shared cluster (fast shutdown: sessions are cut off) and always start it again,
    whatever the test body does, so no other test or engineer is left without it."""
    try:
        _cluster("stop")
        yield
    finally:
        if not postgres_accepts():
            _cluster("start")
        wait_until(postgres_accepts, 60, "PostgreSQL to accept connections again")


@contextmanager
def tiny_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` bytes mounted at `directory` (needs root), unmounted after."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


@dataclass
class Outcome:
    """One request as its client saw it: a status and body, or the transport error."""

    started: float
    seconds: float
    status: int | None
    body: dict | None
    error: str | None = None


@dataclass
class Load:
    """Client threads that each repeat one request (`pause` seconds apart) until stopped,
    recording every outcome."""

    send: Callable[[httpx.Client], httpx.Response]
    url: str
    clients: int = 2
    pause: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(self.clients)
        ]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=20) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = self.send(client)
                    outcome = Outcome(
                        started, time.monotonic() - started, response.status_code, _body(response)
                    )
                except httpx.TransportError as error:
                    outcome = Outcome(started, time.monotonic() - started, None, None, repr(error))
                    time.sleep(0.05)  # a dead server refuses at once: do not spin
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(self.pause)

    def seen(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_for(self, check: Callable[[list[Outcome]], bool], timeout: float, what: str) -> None:
        wait_until(lambda: check(self.seen()), timeout, what)


def _body(response: httpx.Response) -> dict:
    """The JSON body; anything else is kept as text, so the test reports it, not a dead thread."""
    try:
        return response.json()
    except ValueError:
        return {"text": response.text[:500]}
