"""Points whose adapters fit the cache start with every one of them requested once."""

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from benchmarks.harness import loadgen
from benchmarks.harness.sweep import fits_cache, loadgen_command


class RecordingConnection:
    """Stands in for the load generator's HTTP connection: records what it is asked."""

    def __init__(self, failing: str | None = None) -> None:
        self.sent: list[tuple[str, str, dict]] = []
        self.failing = failing

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.sent.append((method, path, json.loads(body)))
        await asyncio.sleep(0)
        return (500, b"boom") if path.endswith(str(self.failing)) else (200, b"{}")


def test_prewarm_requests_every_task_once_over_all_connections() -> None:
    pool = [RecordingConnection(), RecordingConnection()]
    tasks = [f"tsk_{i}" for i in range(7)]
    asyncio.run(loadgen.prewarm(pool, tasks, "a fine film"))
    sent = [entry for connection in pool for entry in connection.sent]
    assert sorted(path for _, path, _ in sent) == sorted(f"/predict/{task}" for task in tasks)
    assert all(method == "POST" and body == {"inputs": ["a fine film"]} for method, _, body in sent)
    assert all(connection.sent for connection in pool)  # the work is spread


def test_prewarm_stops_on_an_error_answer() -> None:
    with pytest.raises(RuntimeError, match="tsk_3 answered 500"):
        asyncio.run(loadgen.prewarm([RecordingConnection(failing="tsk_3")], ["tsk_3"], "x"))


def test_only_points_that_fit_the_cache_are_prewarmed() -> None:
    args = argparse.Namespace(cache_mb=256.0)
    manifest = {"adapter_bytes": 1216512}
    assert fits_cache(128, manifest, args)
    assert not fits_cache(1024, manifest, args)
    sweep = argparse.Namespace(duration=5, warmup=2, max_requests=10, rows_per_request=1, seed=7)
    point = {"adapters": 128, "traffic": "zipf", "concurrency": 64, "prewarmed": True}
    command = loadgen_command("http://127.0.0.1:1", 1, Path("/w"), point, sweep)
    assert command[-1] == "--prewarm"
    point["prewarmed"] = False
    command = loadgen_command("http://127.0.0.1:1", 1, Path("/w"), point, sweep)
    assert "--prewarm" not in command
