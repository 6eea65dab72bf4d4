"""Adapter files damaged in the store while the server is down, found at the cold load."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import ServerProcess
from tests.service.conftest import service_settings
from tests.worker.conftest import free_port

TEXTS = ["a great and fun movie", "a terrible boring film"]


def flip_last_byte(directory: Path) -> None:
    weights = directory / "adapter.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


def swap_labels(directory: Path) -> None:
    """The quiet one: a valid file that would serve every answer under the wrong label."""
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["labels"].reverse()
    config_path.write_text(json.dumps(config))


def truncate_weights(directory: Path) -> None:
    weights = directory / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def delete_weights(directory: Path) -> None:
    (directory / "adapter.safetensors").unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped byte": flip_last_byte,
    "labels swapped": swap_labels,
    "truncated": truncate_weights,
    "deleted": delete_weights,
}


def failures_metric(metrics: str) -> float:
    line = 'listserve_adapter_load_failures_total{reason="integrity"} '
    return float(next(row for row in metrics.splitlines() if row.startswith(line))[len(line) :])


@pytest.mark.slow
def test_damaged_adapters_are_refused_reported_and_never_served(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """Four tasks' adapters are each damaged a different way while the server is stopped; a
    fifth stays intact. After the restart every damaged one is refused with 503
    `adapter_unavailable` on each request (a failed load is not cached), logged with its task
    and counted in `listserve_adapter_load_failures_total`; the intact one is served as before.
    Putting the original bytes back makes each served again with the same answers, so the
    refusal came from the damage and nothing else."""
    settings = service_settings(tmp_path, tiny_roberta_path, port=free_port())
    server = ServerProcess(settings, tmp_path / "server.log")
    try:
        api = server.wait_ready()
        tenant = api.tenant()
        tasks = [api.ready_task(tenant, name=name)["id"] for name in [*DAMAGE, "intact"]]
        before = {task_id: api.predict(tenant, task_id, TEXTS) for task_id in tasks}
    finally:
        server.stop()

    store = Path(settings.store)
    originals: dict[Path, bytes] = {}
    for task_id, damage in zip(tasks[:-1], DAMAGE.values(), strict=True):
        (directory,) = store.glob(f"*/{task_id}/v1-*")
        originals.update({path: path.read_bytes() for path in directory.iterdir()})
        damage(directory)

    restarted = ServerProcess(settings, tmp_path / "restarted.log")
    try:
        api = restarted.wait_ready()
        damaged, intact = tasks[:-1], tasks[-1]
        for task_id in damaged * 2:
            response = api.client.post(
                f"/predict/{task_id}", json={"inputs": TEXTS}, headers=tenant
            )
            assert response.status_code == 503, (task_id, response.text)
            assert response.json()["error"]["type"] == "adapter_unavailable"
            assert response.json()["error"]["details"] == {"version": 1}
        assert api.predict(tenant, intact, TEXTS) == before[intact]
        assert failures_metric(api.client.get("/metrics").text) == 2 * len(damaged)
        refusals = [
            json.loads(line)
            for line in restarted.log().splitlines()
            if '"adapter failed to load' in line
        ]
        assert sorted(r["task_id"] for r in refusals) == sorted(damaged * 2)
        assert all(r["level"] == "ERROR" for r in refusals)
        assert sum("does not match the registered" in r["message"] for r in refusals) == 6
        assert sum("is missing" in r["message"] for r in refusals) == 2

        for path, data in originals.items():
            path.write_bytes(data)
        for task_id in damaged:
            assert api.predict(tenant, task_id, TEXTS) == before[task_id]
    finally:
        restarted.stop()
