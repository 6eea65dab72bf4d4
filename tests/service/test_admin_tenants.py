"""Operators' tenant routes on SQLite and PostgreSQL: list tenants, rotate a key (the old one
works until revoked), revoke one (refused at once here, within the auth cache's TTL by another
process), and delete a tenant with its tasks, texts and files."""

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.registry.models import ApiKey, Task, TaskData
from tests.service.conftest import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def overrides(request, tmp_path: Path):
    if request.param == "sqlite":
        yield {}
    else:
        with pg_schema() as url:
            yield {"database_url": url}


def _key(response) -> dict:
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def test_tenants_are_listed_newest_first_in_pages(make_api, overrides) -> None:
    with make_api(**overrides) as api:
        for name in ("a", "b", "c"):
            api.tenant(name)
        first = api.client.get("/admin/tenants", params={"limit": 2}, headers=api.admin).json()
        assert [t["name"] for t in first["data"]] == ["c", "b"] and first["has_more"]
        rest = api.client.get(
            "/admin/tenants",
            params={"limit": 2, "after": first["data"][-1]["id"]},
            headers=api.admin,
        ).json()
        assert [t["name"] for t in rest["data"]] == ["a"] and not rest["has_more"]
        key = first["data"][0]["keys"][0]
        assert set(key) == {"id", "prefix", "created_at", "revoked_at"}
        assert key["prefix"].startswith("lsk_") and key["revoked_at"] is None
        bad = api.client.get("/admin/tenants", params={"after": "tnt_nope"}, headers=api.admin)
        assert bad.status_code == 422 and "after" in bad.json()["error"]["message"]
        assert api.client.get("/admin/tenants").status_code == 401


def test_a_rotated_key_works_beside_the_old_one_until_that_is_revoked(make_api, overrides) -> None:
    with make_api(**overrides) as api:
        old = api.tenant("acme")
        tenant = api.client.get("/admin/tenants", headers=api.admin).json()["data"][0]
        added = api.client.post(f"/admin/tenants/{tenant['id']}/keys", headers=api.admin)
        new = _key(added)
        assert added.json()["prefix"] == added.json()["api_key"][:10]
        for key in (old, new):
            assert api.client.get("/tasks", headers=key).status_code == 200
        old_id = tenant["keys"][0]["id"]
        revoked = api.client.delete(
            f"/admin/tenants/{tenant['id']}/keys/{old_id}", headers=api.admin
        )
        assert revoked.status_code == 204
        assert api.client.get("/tasks", headers=old).status_code == 401  # at once, cached or not
        assert api.client.get("/tasks", headers=new).status_code == 200
        keys = api.client.get("/admin/tenants", headers=api.admin).json()["data"][0]["keys"]
        assert [k["revoked_at"] is not None for k in keys] == [True, False]
        other = api.tenant("other")
        other_tenant = api.client.get("/admin/tenants", headers=api.admin).json()["data"][0]
        wrong = f"/admin/tenants/{other_tenant['id']}/keys/{keys[1]['id']}"
        assert api.client.delete(wrong, headers=api.admin).status_code == 404
        assert api.client.get("/tasks", headers=new).status_code == 200
        assert api.client.get("/tasks", headers=other).status_code == 200
        missing = api.client.post("/admin/tenants/tnt_nope/keys", headers=api.admin)
        assert missing.status_code == 404


def test_another_process_refuses_a_revoked_key_within_the_cache_ttl(
    make_api, tmp_path: Path, overrides
) -> None:
    ttl = 1.0
    with (
        make_api(tmp_path, auth_cache_seconds=ttl, **overrides) as here,
        make_api(tmp_path, auth_cache_seconds=ttl, **overrides) as replica,
    ):
        key = here.tenant()
        assert replica.client.get("/tasks", headers=key).status_code == 200  # now cached there
        tenant = here.client.get("/admin/tenants", headers=here.admin).json()["data"][0]
        path = f"/admin/tenants/{tenant['id']}/keys/{tenant['keys'][0]['id']}"
        assert here.client.delete(path, headers=here.admin).status_code == 204
        revoked_at = time.monotonic()
        while replica.client.get("/tasks", headers=key).status_code == 200:
            assert time.monotonic() - revoked_at <= ttl + 0.5, "revoked key outlived the TTL"
            time.sleep(0.05)
        assert here.client.get("/tasks", headers=key).status_code == 401


def test_deleting_a_tenant_deletes_its_tasks_texts_and_files(make_api, overrides) -> None:
    with make_api(**overrides) as api:
        doomed, kept = api.tenant("doomed"), api.tenant("kept")
        task = api.ready_task(doomed)
        kept_task = api.ready_task(kept)
        tenants = api.client.get("/admin/tenants", headers=api.admin).json()["data"]
        doomed_id = next(t["id"] for t in tenants if t["name"] == "doomed")
        store = api.services.store
        assert (store.root / doomed_id).is_dir()
        assert (
            api.client.delete(f"/admin/tenants/{doomed_id}", headers=api.admin).status_code == 204
        )
        assert api.client.get("/tasks", headers=doomed).status_code == 401
        assert not (store.root / doomed_id).exists()
        names = [
            t["name"] for t in api.client.get("/admin/tenants", headers=api.admin).json()["data"]
        ]
        assert names == ["kept"]
        with api.services.database.read_session() as session:
            assert session.get(TaskData, task["id"]) is None
            assert session.get(Task, task["id"]).deleted_at is not None
            live_keys = select(func.count()).where(
                ApiKey.tenant_id == doomed_id, ApiKey.revoked_at.is_(None)
            )
            assert session.scalar(live_keys) == 0
        assert api.predict(kept, kept_task["id"], ["fun"])["adapter_version"] == 1
        again = api.client.delete(f"/admin/tenants/{doomed_id}", headers=api.admin)
        assert again.status_code == 404
        created = api.client.post(f"/admin/tenants/{doomed_id}/keys", headers=api.admin)
        assert created.status_code == 404  # a deleted tenant gets no new key
