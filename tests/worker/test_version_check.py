"""Hot availability costs one indexed lookup per request: `/predict` resolves the version the
task serves in the registry each time (`service.registry.adapters.serving_target`, which the
predictor calls), so no API process needs a notice to serve a version a worker registered or a
tenant promoted. This measures that lookup with many
tasks and versions, on both registry backends, and checks SQLite answers it from the index.

`pytest tests/worker/test_version_check.py -s` prints the figures quoted in the README notes.
"""

import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.registry.adapters import SERVING_TARGET_QUERY, serving_target
from service.registry.db import Database
from service.registry.ids import new_id
from service.registry.models import AdapterVersion, Job, Task, Tenant, utcnow
from tests.service.conftest import pg_schema

TASKS = 300
VERSIONS = 5
LOOKUPS = 400


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'versions.sqlite'}")
        db.migrate()
        yield db
        db.dispose()
    else:
        with pg_schema() as url:
            db = Database(url)
            db.migrate()
            yield db
            db.dispose()


def fill(database: Database) -> tuple[str, list[str]]:
    """TASKS tasks with VERSIONS registered versions each."""
    now = utcnow()
    tenant = Tenant(id=new_id("ten"), name="bench", created_at=now)
    tasks, jobs, adapters = [], [], []
    for i in range(TASKS):
        task = Task(
            id=new_id("tsk"),
            tenant_id=tenant.id,
            name=f"t{i}",
            status="ready",
            serving_version=VERSIONS,
            labels=["a", "b"],
            template="{text} It was {mask} .",
            label_words={"a": "great", "b": "bad"},
            method="list",
            head_kind="mlm",
            hyperparameters={},
        )
        tasks.append(task)
        for version in range(1, VERSIONS + 1):
            job = Job(
                id=new_id("job"),
                task_id=task.id,
                tenant_id=tenant.id,
                status="succeeded",
                max_attempts=3,
            )
            jobs.append(job)
            adapters.append(_adapter(task, job, version))
    with database.session() as session:
        for batch in (
            [tenant],
            tasks,
            jobs,
            adapters,
        ):  # no ORM relationships: insert parents first
            session.add_all(batch)
            session.flush()
    return tenant.id, [task.id for task in tasks]


def _adapter(task: Task, job: Job, version: int) -> AdapterVersion:
    return AdapterVersion(
        task_id=task.id,
        tenant_id=task.tenant_id,
        job_id=job.id,
        version=version,
        path=f"{task.tenant_id}/{task.id}/v{version}",
        sha256="0" * 64,
        size_bytes=1,
        backbone_fingerprint="x@1",
        metrics={},
    )


def test_the_per_request_version_check_is_one_cheap_indexed_lookup(database: Database) -> None:
    tenant_id, task_ids = fill(database)
    assert database.read(serving_target, tenant_id, task_ids[0]).version == VERSIONS
    assert database.read(serving_target, tenant_id, task_ids[0], 2).version == 2  # pinned
    timings = []
    for task_id in random.Random(0).choices(task_ids, k=LOOKUPS):
        started = time.perf_counter()
        target = database.read(serving_target, tenant_id, task_id)
        timings.append(time.perf_counter() - started)
        assert target.version == VERSIONS
    timings.sort()
    p50, p99 = statistics.median(timings) * 1e3, timings[int(0.99 * len(timings))] * 1e3
    backend = "sqlite" if database.is_sqlite else "postgresql"
    print(f"\nversion check on {backend}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", end=" ")
    print(f"({TASKS} tasks x {VERSIONS} versions, {LOOKUPS} lookups)")
    assert p50 < 20  # generous for a loaded CI box; an idle one measures well under 1 ms
    if database.is_sqlite:
        query = SERVING_TARGET_QUERY.params(task_id=task_ids[0], tenant_id=tenant_id, version=None)
        sql = str(query.compile(database.engine, compile_kwargs={"literal_binds": True}))
        with database.engine.connect() as connection:
            plan = " ".join(
                row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
