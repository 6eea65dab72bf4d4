"""Real Redis, real `celery worker` subprocesses and a real API (TestClient) on one SQLite file.

Each harness gets its own Redis key prefix, so parallel runs (and other suites) sharing the
Redis on 6379 never see each other's queues; its keys are deleted afterwards. Tests that stop
Redis run their own `redis-server` on a free port and never touch the shared one.
"""

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from tests.processes import LoggedProcess
from tests.service.conftest import Api, running_api, service_settings, wait_until
from worker.settings import CelerySettings

SHARED_REDIS_PORT = 6379
# Settings a worker subprocess must share with the API, passed as LISTSERVE_* variables.
SHARED_FIELDS = (
    "backbone",
    "device",
    "database_url",
    "store",
    "broker_url",
    "broker_key_prefix",
    "training_queue",
    "lease_seconds",
    "heartbeat_seconds",
    "progress_interval_seconds",
    "log_level",
    "job_time_limit_seconds",
    "job_kill_grace_seconds",
)
# Short leases and sweeps so faults resolve in seconds.
FAST_JOBS = {
    "lease_seconds": 3.0,
    "heartbeat_seconds": 0.2,
    "progress_interval_seconds": 0.1,
    "sweep_interval_seconds": 0.5,
}


def redis_up(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_redis() -> str:
    """The shared Redis on 6379, started if it is not running (and then left running)."""
    if not redis_up(SHARED_REDIS_PORT):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(SHARED_REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        wait_until(lambda: redis_up(SHARED_REDIS_PORT), 10, "redis on 6379")
    return f"redis://127.0.0.1:{SHARED_REDIS_PORT}/0"


class PrivateRedis:
    """A redis-server this test owns, on its own port, to stop and start at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: redis_up(self.port), 10, f"redis on {self.port}")

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the server: connections are accepted by the kernel but never answered, like
        a hung broker. Always resumed afterwards."""
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class WorkerProcess(LoggedProcess):
    """One `celery worker` subprocess (solo pool), its log in a file."""

    def wait_ready(self, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_until(ready, timeout, f"worker {self.pid} to be ready")


class CeleryHarness:
    """Settings, workers and an API for one test (or module) against one broker."""

    def __init__(self, root: Path, backbone: Path, broker_url: str, **overrides) -> None:
        self.root = root
        self.prefix = f"lstest-{uuid.uuid4().hex[:12]}:"
        base = service_settings(root, backbone, **FAST_JOBS).model_dump()
        base.update(broker_url=broker_url, broker_key_prefix=self.prefix, **overrides)
        self.settings = CelerySettings(**base)
        self.workers: list[WorkerProcess] = []

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTSERVE_")}
        for field in SHARED_FIELDS:
            env[f"LISTSERVE_{field.upper()}"] = str(self.settings.flat_values()[field])
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
        return env

    def start_worker(self, name: str, via_cli: bool = False, pool: str = "solo") -> WorkerProcess:
        """`celery -A worker worker`, or the same through `listserve worker`."""
        hostname = f"{name}@{self.prefix.rstrip(':')}"
        if via_cli:
            command = [str(Path(sys.executable).parent / "listserve"), "worker", f"--pool={pool}"]
        else:
            command = [sys.executable, "-m", "celery", "-A", "worker", "worker", f"--pool={pool}"]
            command += ["--concurrency=1", "--without-gossip", "--without-mingle"]
            command += [f"--queues={self.settings.training_queue}"]
        command.append(f"--hostname={hostname}")
        worker = WorkerProcess(command, self.worker_env(), self.root / f"{name}.log")
        self.workers.append(worker)
        return worker

    def api(self):
        """A running API (TestClient) with the Celery runner; a context manager."""
        return running_api(self.settings)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self._delete_keys()

    def _delete_keys(self) -> None:
        url = self.settings.broker_url
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1)
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # a private Redis already stopped takes its keys with it


@contextmanager
def celery_harness(root: Path, backbone: Path, broker_url: str, **overrides):
    harness = CeleryHarness(root, backbone, broker_url, **overrides)
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def celery_stack(
    root: Path, backbone: Path, broker_url: str, workers: int = 1, via_cli: bool = False
) -> Iterator[tuple[Api, list[WorkerProcess]]]:
    """Workers started first (they take longest to boot), then the API; all ready."""
    with ExitStack() as stack:
        harness = stack.enter_context(celery_harness(root, backbone, broker_url))
        started = [harness.start_worker(f"w{i}", via_cli) for i in range(workers)]
        api = stack.enter_context(harness.api())
        for worker in started:
            worker.wait_ready()
        yield api, started


def job_detail(api: Api, job_id: str) -> dict:
    return api.client.get(f"/admin/jobs/{job_id}", headers=api.admin).json()


def job_events(api: Api, job_id: str, after: int | None = None) -> list[dict]:
    params = {"limit": 500} if after is None else {"limit": 500, "after": after}
    response = api.client.get(f"/admin/jobs/{job_id}/events", params=params, headers=api.admin)
    return response.json()["data"]


def owner_pid(owner: str) -> int:
    """Lease owners are `host:pid:nonce`."""
    return int(owner.split(":")[1])
