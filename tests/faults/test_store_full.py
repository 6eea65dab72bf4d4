"""The adapter store's disk fills up: a real tmpfs of a few hundred KB as `LISTSERVE_STORE`."""

import errno
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.registry.models import AdapterVersion
from tests.faults.conftest import ServerProcess, registry, tiny_tmpfs
from tests.service.conftest import service_settings
from tests.worker.conftest import free_port

TEXTS = ["a great and fun movie", "a terrible boring film"]


def fill(directory: Path) -> Path:
    """Write one file until the filesystem refuses with ENOSPC; returns it (delete to free)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    assert os.statvfs(directory).f_bavail == 0
    return filler


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_full_store_fails_the_job_cleanly_and_changes_nothing_registered(
    tmp_path: Path, tiny_roberta_path: Path
) -> None:
    """One task is trained while there is room; then the store's filesystem is filled and a
    second task trains. Its job must fail (not retry forever, not stay `running`) with a
    readable reason; the task is `failed` with no adapter; no staging or partial files are
    left; the first task's files, registry entry and answers are untouched. Freeing the space
    is enough for the same process to train again."""
    with tiny_tmpfs(tmp_path / "store", "512k") as store:
        settings = service_settings(tmp_path, tiny_roberta_path, port=free_port(), store=store)
        server = ServerProcess(settings, tmp_path / "server.log")
        try:
            api = server.wait_ready()
            tenant = api.tenant()
            kept = api.ready_task(tenant, name="kept")
            before = api.predict(tenant, kept["id"], TEXTS)
            stored = files(store)
            filler = fill(store)

            lost = api.create_task(tenant, name="lost")
            failed = api.wait_task(tenant, lost["id"], timeout=60)
            assert failed["status"] == "failed" and failed["adapter"] is None
            job = api.wait_job(lost["job"]["id"], ("failed",))
            assert job["attempts"] == 1
            error = job["error"]
            assert (error["type"], error["code"]) == ("service_error", "store_error")
            assert error["message"].startswith("could not write the adapter to the store")
            assert "No space left on device" in error["message"]

            with registry(settings.database_url) as database, database.read_session() as session:
                assert session.scalar(select(func.count()).select_from(AdapterVersion)) == 1
            assert files(store) == {**stored, "filler": filler.read_bytes()}
            assert not list(store.rglob(".staging-*"))
            assert api.client.get(f"/tasks/{kept['id']}", headers=tenant).json() == kept
            assert api.predict(tenant, kept["id"], TEXTS) == before
            for status in ("queued", "running"):
                listed = api.client.get("/admin/jobs", params={"status": status}, headers=api.admin)
                assert listed.json()["data"] == [], status

            filler.unlink()
            assert api.ready_task(tenant, name="after")["adapter"]["version"] == 1
        finally:
            server.stop()
