"""Admin job views, events and cancel over HTTP; per-tenant quotas and the predict rate limit."""

import pytest

from service.ratelimit import TokenBuckets
from tests.service.conftest import SLOW_TRAINING, task_body


def test_job_detail_events_and_filters(api) -> None:
    alice, bob = api.tenant("alice"), api.tenant("bob")
    task = api.ready_task(alice)
    bobs = api.ready_task(bob)
    job_id = task["job"]["id"]
    job = api.client.get(f"/admin/jobs/{job_id}", headers=api.admin).json()
    assert job["task_id"] == task["id"] and job["status"] == "succeeded"
    assert job["attempts"] == 1 and job["error"] is None and job["metrics"]["steps"] == 10
    assert set(job["progress"]) == {
        *("session", "sessions", "phase", "step", "steps", "fraction"),
        *("elapsed_seconds", "eta_seconds"),
    }
    assert job["progress"]["eta_seconds"] == 0 and job["progress"]["elapsed_seconds"] > 0
    assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]

    events = api.client.get(f"/admin/jobs/{job_id}/events", headers=api.admin).json()["data"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "succeeded"
    progress = [e["data"] for e in events if e["kind"] == "progress"]
    assert progress and [p["fraction"] for p in progress] == sorted(p["fraction"] for p in progress)
    assert progress[-1]["fraction"] == 1.0
    page = api.client.get(
        f"/admin/jobs/{job_id}/events",
        params={"after": events[1]["id"], "limit": 2},
        headers=api.admin,
    ).json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in events[2:4]] and page["has_more"]

    everything = api.client.get("/admin/jobs", headers=api.admin).json()
    assert [j["id"] for j in everything["data"]] == [bobs["job"]["id"], job_id]
    only_alice = api.client.get(
        "/admin/jobs", params={"tenant": job["tenant_id"]}, headers=api.admin
    ).json()
    assert [j["id"] for j in only_alice["data"]] == [job_id]
    first = api.client.get("/admin/jobs", params={"limit": 1}, headers=api.admin).json()
    assert first["has_more"] and first["data"][0]["id"] == bobs["job"]["id"]
    second = api.client.get(
        "/admin/jobs", params={"limit": 1, "after": bobs["job"]["id"]}, headers=api.admin
    ).json()
    assert [j["id"] for j in second["data"]] == [job_id] and not second["has_more"]
    for params in ({"status": "bogus"}, {"limit": 0}, {"after": "job_nope"}):
        bad = api.client.get("/admin/jobs", params=params, headers=api.admin)
        assert bad.status_code == 422, params
    assert api.client.get("/admin/jobs/job_nope", headers=api.admin).status_code == 404
    assert api.client.get("/admin/jobs/job_nope/events", headers=api.admin).status_code == 404


def test_cancel_a_running_job(api) -> None:
    tenant = api.tenant()
    task = api.create_task(tenant, hyperparameters=SLOW_TRAINING)
    job_id = task["job"]["id"]
    api.wait_job(job_id, ("running",))
    cancelled = api.client.post(f"/admin/jobs/{job_id}/cancel", headers=api.admin)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] in ("cancel_requested", "cancelled")
    job = api.wait_job(job_id, ("cancelled",))
    assert job["finished_at"] is not None
    final = api.client.get(f"/tasks/{task['id']}", headers=tenant).json()
    assert final["status"] == "cancelled" and final["adapter"] is None
    kinds = [
        e["kind"]
        for e in api.client.get(f"/admin/jobs/{job_id}/events", headers=api.admin).json()["data"]
    ]
    assert kinds[-1] == "cancelled" and "cancel_requested" in kinds
    again = api.client.post(f"/admin/jobs/{job_id}/cancel", headers=api.admin)
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"
    assert api.client.post("/admin/jobs/job_nope/cancel", headers=api.admin).status_code == 404
    listed = api.client.get("/admin/jobs", params={"status": "cancelled"}, headers=api.admin)
    assert [j["id"] for j in listed.json()["data"]] == [job_id]


def test_quota_on_concurrent_training_jobs(make_api) -> None:
    with make_api(max_active_jobs_per_tenant=1) as api:
        alice, bob = api.tenant("alice"), api.tenant("bob")
        slow = api.create_task(alice, hyperparameters=SLOW_TRAINING)
        refused = api.client.post("/tasks", json=slow_body(), headers=alice)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        error = refused.json()["error"]
        assert error["type"] == "quota_exceeded" and error["details"]["quota"] == "active_jobs"
        assert api.client.post("/tasks", json=slow_body(), headers=bob).status_code == 202
        api.client.post(f"/admin/jobs/{slow['job']['id']}/cancel", headers=api.admin)
        api.wait_job(slow["job"]["id"], ("cancelled",))
        assert api.client.post("/tasks", json=slow_body(), headers=alice).status_code == 202


def slow_body() -> dict:
    return task_body(hyperparameters=SLOW_TRAINING)


def test_quota_on_tasks_per_tenant(make_api) -> None:
    with make_api(max_tasks_per_tenant=2, max_active_jobs_per_tenant=5) as api:
        tenant = api.tenant()
        first = api.ready_task(tenant)
        api.ready_task(tenant)
        refused = api.client.post("/tasks", json=slow_body(), headers=tenant)
        assert refused.status_code == 429
        assert refused.json()["error"]["details"] == {"quota": "tasks", "limit": 2}
        assert "retry-after" not in refused.headers
        assert api.client.delete(f"/tasks/{first['id']}", headers=tenant).status_code == 204
        api.ready_task(tenant)


def test_predict_rate_limit_per_tenant(make_api) -> None:
    with make_api(predict_rate_per_second=0.1, predict_burst=2) as api:
        alice, bob = api.tenant("alice"), api.tenant("bob")
        task = api.ready_task(alice)
        url = f"/predict/{task['id']}"
        statuses = [
            api.client.post(url, json={"inputs": ["good"]}, headers=alice).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        limited = api.client.post(url, json={"inputs": ["good"]}, headers=alice)
        assert limited.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        # Bob has his own bucket (his request is refused for another reason: not his task)
        assert api.client.post(url, json={"inputs": ["good"]}, headers=bob).status_code == 404


def test_token_buckets_refill_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert [buckets.acquire("a"), buckets.acquire("a")] == [0.0, 0.0]
    assert buckets.acquire("a") == 0.5
    assert buckets.acquire("b") == 0.0
    now[0] = 0.5
    assert buckets.acquire("a") == 0.0
    assert buckets.acquire("a") > 0


def test_a_request_for_several_tasks_costs_one_token_per_task() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=4, clock=lambda: now[0])
    assert buckets.acquire("t", 3) == 0.0
    assert buckets.acquire("t", 3) == pytest.approx(1.0)  # 2 tokens short at 2/s
    now[0] = 1.0
    assert buckets.acquire("t", 3) == 0.0
    assert buckets.acquire("big", 10) == 0.0  # never more than a full bucket
