"""What the dashboard reads as an operator: every tenant's tasks, one task with its versions and
jobs, serving health now (`/admin/serving`) and over time (`/admin/serving/history`). The
registry queries run on SQLite and PostgreSQL; the routes over HTTP on a running app."""

from datetime import timedelta

import pytest

from service.registry import jobs, overview, tasks, tenants
from service.registry.db import Database
from service.registry.models import utcnow
from tests.service.conftest import SLOW_TRAINING, wait_until
from tests.service.test_registry import QUOTAS, new_task


def two_tenants(database: Database) -> tuple[dict[str, list[str]], str]:
    """acme with two tasks (one deleted), umbrella with one: `{tenant id: [live task ids]}`
    and the deleted task's id."""
    live: dict[str, list[str]] = {}
    for name, count in (("acme", 2), ("umbrella", 1)):
        with database.session() as session:
            tenant, _ = tenants.create_tenant(session, name)
        live[tenant.id] = []
        for index in range(count):
            with database.session() as session:
                task, _ = tasks.create_task(
                    session, new_task(tenant.id, f"{name}-{index}"), QUOTAS, 3
                )
            live[tenant.id].append(task.id)
    acme = next(iter(live))
    deleted = live[acme].pop()
    with database.session() as session:
        tasks.delete_task(session, acme, deleted)
    return live, deleted


def test_every_live_task_of_every_tenant_newest_first(database: Database) -> None:
    live, deleted = two_tenants(database)
    acme, umbrella = live
    with database.read_session() as session:
        everyone, more = overview.list_all_tasks(session, 10, None)
        only_acme, _ = overview.list_all_tasks(session, 10, None, acme)
        first, more_after_first = overview.list_all_tasks(session, 1, None)
        rest, _ = overview.list_all_tasks(session, 10, first[0].id)
        names = overview.tenant_names(session, [task.tenant_id for task in everyone])
    assert [t.id for t in everyone] == [live[umbrella][0], live[acme][0]]
    assert not more and more_after_first
    assert [t.id for t in only_acme] == live[acme]
    assert [t.id for t in first + rest] == [t.id for t in everyone]
    assert names == {acme: "acme", umbrella: "umbrella"}
    assert deleted not in {t.id for t in everyone}
    with database.read_session() as session:
        assert overview.get_live_task(session, deleted) is None
        assert overview.get_live_task(session, live[acme][0]).tenant_id == acme
        assert overview.get_live_task(session, "tsk_missing") is None


def test_a_deleted_task_is_not_live_but_keeps_its_name_for_counters(database: Database) -> None:
    with database.session() as session:
        tenant, _ = tenants.create_tenant(session, "acme")
    with database.session() as session:
        task, _ = tasks.create_task(session, new_task(tenant.id, "gone"), QUOTAS, 3)
    with database.session() as session:
        tasks.delete_task(session, tenant.id, task.id)
    with database.read_session() as session:
        assert overview.get_live_task(session, task.id) is None
        assert overview.task_names(session, [task.id, "tsk_other"]) == {
            task.id: ("gone", tenant.id)
        }


def test_job_counts_and_workers_come_from_the_leases(database: Database) -> None:
    with database.session() as session:
        tenant, _ = tenants.create_tenant(session, "acme")
    job_ids = []
    for index in range(3):
        with database.session() as session:
            _, job = tasks.create_task(session, new_task(tenant.id, f"t{index}"), QUOTAS, 3)
        job_ids.append(job.id)
    now = utcnow()
    with database.session() as session:
        jobs.claim_job(session, job_ids[0], "worker-a", 60, now)
        jobs.claim_job(session, job_ids[1], "worker-b", 60, now - timedelta(seconds=30))
    with database.session() as session:
        jobs.request_cancel(session, job_ids[1])
    with database.read_session() as session:
        counts = overview.active_job_counts(session)
        found = overview.workers(session)
    assert counts == {"queued": 1, "running": 1, "cancel_requested": 1}
    assert [(w.owner, w.running_jobs) for w in found] == [("worker-a", 1), ("worker-b", 1)]
    a, b = found
    assert a.lease_expires_at - a.last_heartbeat_at == timedelta(seconds=60)
    assert b.last_heartbeat_at < a.last_heartbeat_at  # b's heartbeat is older


def test_no_jobs_counts_zero_and_no_workers(database: Database) -> None:
    with database.read_session() as session:
        assert overview.active_job_counts(session) == {
            "queued": 0,
            "running": 0,
            "cancel_requested": 0,
        }
        assert overview.workers(session) == []


# ---- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def fast_history_api(make_api):
    with make_api(serving_history_seconds=0.05, serving_history_samples=100) as running:
        yield running


def test_the_overview_routes_are_admin_only(api) -> None:
    tenant = api.tenant()
    for path in ("/admin/tasks", "/admin/tasks/tsk_x", "/admin/serving", "/admin/serving/history"):
        assert api.client.get(path).status_code == 401, path
        assert api.client.get(path, headers=tenant).status_code == 401, path
    assert api.client.get("/admin/serving/history", headers=api.admin).status_code == 200


def test_the_admin_sees_every_tenant_s_tasks_with_versions_and_jobs(api) -> None:
    acme, umbrella = api.tenant("acme"), api.tenant("umbrella")
    first = api.ready_task(acme, name="acme-reviews")
    other = api.create_task(umbrella, name="umbrella-news", hyperparameters=SLOW_TRAINING)
    listed = api.client.get("/admin/tasks", headers=api.admin).json()
    assert [(t["id"], t["tenant_name"]) for t in listed["data"]] == [
        (other["id"], "umbrella"),
        (first["id"], "acme"),
    ]
    assert listed["data"][1]["adapter"]["version"] == 1
    assert listed["data"][0]["job"]["status"] in ("queued", "running")
    acme_id = listed["data"][1]["tenant_id"]
    only = api.client.get(f"/admin/tasks?tenant={acme_id}", headers=api.admin).json()["data"]
    assert [t["id"] for t in only] == [first["id"]]

    detail = api.client.get(f"/admin/tasks/{first['id']}", headers=api.admin).json()
    assert detail["task"]["tenant_id"] == acme_id
    assert detail["versions"]["serving_version"] == 1
    assert [v["version"] for v in detail["versions"]["data"]] == [1]
    assert [j["status"] for j in detail["jobs"]] == ["succeeded"]
    assert detail["jobs"][0]["id"] == detail["task"]["job"]["id"]

    api.client.post(f"/jobs/{other['job']['id']}/cancel", headers=umbrella)
    assert api.client.delete(f"/tasks/{first['id']}", headers=acme).status_code == 204
    assert api.client.get(f"/admin/tasks/{first['id']}", headers=api.admin).status_code == 404
    remaining = api.client.get("/admin/tasks", headers=api.admin).json()["data"]
    assert [t["id"] for t in remaining] == [other["id"]]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/admin/tasks?tenant=a%20b", "tenant"),
        ("/admin/tasks?after=tsk_nope", "after"),
        ("/admin/tasks?limit=0", "limit"),
        ("/admin/serving/history?since=-1", "since"),
    ],
)
def test_bad_overview_parameters_name_the_field(api, path: str, field: str) -> None:
    response = api.client.get(path, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


def test_serving_now_counts_jobs_workers_and_texts_per_task(api) -> None:
    tenant = api.tenant()
    ready = api.ready_task(tenant, name="served")
    api.predict(tenant, ready["id"], ["a great film", "a dull film", "fun"])
    slow = api.create_task(tenant, name="slow", hyperparameters=SLOW_TRAINING)
    api.wait_job(slow["job"]["id"], ("running",))

    now = api.client.get("/admin/serving", headers=api.admin).json()
    assert now["ready"] is True
    assert now["jobs"]["running"] == 1
    assert [w["running_jobs"] for w in now["workers"]] == [1]
    counted = {t["task_id"]: t for t in now["tasks"]}
    assert counted[ready["id"]]["predictions"] == 3
    assert counted[ready["id"]]["name"] == "served"
    assert now["runner"]["kind"] == "in-process"
    assert now["adapter_cache"]["entries"] >= 1
    api.client.post(f"/jobs/{slow['job']['id']}/cancel", headers=tenant)
    api.wait_job(slow["job"]["id"], ("cancelled",))
    assert api.client.get("/admin/serving", headers=api.admin).json()["workers"] == []


def test_the_history_samples_serving_as_it_happens(fast_history_api) -> None:
    api = fast_history_api
    tenant = api.tenant()
    task = api.ready_task(tenant)
    for _ in range(5):
        api.predict(tenant, task["id"], ["a great film", "a dull film"])

    def busy_samples() -> list[dict] | None:
        body = api.client.get("/admin/serving/history", headers=api.admin).json()
        busy = [s for s in body["samples"] if s["rows"]]
        return busy if sum(s["rows"] for s in busy) >= 10 else None

    busy = wait_until(busy_samples, 10, "samples with every served row")
    assert sum(s["rows"] for s in busy) == 10  # the history saw every row, once
    assert sum(s["requests"] for s in busy) == 5
    assert all(s["rows_per_s"] > 0 and s["mean_batch_rows"] >= 1 for s in busy)
    assert all(s["latency_ms_p50"] is not None for s in busy)
    assert any(s["cache_bytes"] > 0 and s["cache_entries"] == 1 for s in busy)

    body = api.client.get("/admin/serving/history", headers=api.admin).json()
    assert (body["interval_seconds"], body["capacity"]) == (0.05, 100)
    latest = body["samples"][-1]["at"]
    wait_until(
        lambda: (
            api.client.get("/admin/serving/history", headers=api.admin).json()["samples"][0]["at"]
            > body["samples"][0]["at"]
        ),
        20,
        "the full ring to drop its oldest sample",
    )
    later = api.client.get(f"/admin/serving/history?since={latest}", headers=api.admin).json()[
        "samples"
    ]
    assert all(s["at"] > latest for s in later)
    full = api.client.get("/admin/serving/history", headers=api.admin).json()["samples"]
    assert len(full) == 100
