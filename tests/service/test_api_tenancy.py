"""Tenancy: keys on every route, another tenant's task answers exactly like a missing one, the
admin token guards /admin, and nothing crosses between tenants."""

import pytest

from service.auth import hash_key


@pytest.fixture
def two_tenants(api):
    alice, bob = api.tenant("alice"), api.tenant("bob")
    task = api.ready_task(alice)
    return api, alice, bob, task


def test_another_tenants_task_is_404_on_every_route(two_tenants) -> None:
    api, alice, bob, task = two_tenants
    client, task_id = api.client, task["id"]
    missing = "tsk_000000000000000000000000"
    routes = [
        ("GET", "/tasks/{}", None),
        ("DELETE", "/tasks/{}", None),
        ("POST", "/predict/{}", {"inputs": ["a great movie"]}),
    ]
    for method, template, body in routes:
        theirs = client.request(method, template.format(task_id), json=body, headers=bob)
        absent = client.request(method, template.format(missing), json=body, headers=bob)
        assert theirs.status_code == absent.status_code == 404, (method, template)
        assert theirs.json() == absent.json()
    assert client.get("/tasks", headers=bob).json() == {"data": [], "has_more": False}
    # Alice still has her task, untouched by Bob's DELETE
    assert client.get(f"/tasks/{task_id}", headers=alice).json()["status"] == "ready"
    assert api.predict(alice, task_id, ["a great movie"])["adapter_version"] == 1


def test_a_tenants_own_tasks_stay_its_own(two_tenants) -> None:
    api, alice, bob, task = two_tenants
    bobs = api.create_task(bob, name="bob's")
    assert [t["id"] for t in api.client.get("/tasks", headers=alice).json()["data"]] == [task["id"]]
    assert [t["id"] for t in api.client.get("/tasks", headers=bob).json()["data"]] == [bobs["id"]]
    assert api.client.get(f"/tasks/{bobs['id']}", headers=alice).status_code == 404
    api.wait_task(bob, bobs["id"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("GET", "/tasks/tsk_x"),
        ("DELETE", "/tasks/tsk_x"),
        ("POST", "/predict/tsk_x"),
    ],
)
def test_tenant_routes_need_a_valid_tenant_key(api, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer lsk_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        api.admin,  # the admin token is not a tenant key
    ):
        response = api.client.request(method, path, json={}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/tenants"),
        ("GET", "/admin/jobs"),
        ("GET", "/admin/jobs/job_x"),
        ("GET", "/admin/jobs/job_x/events"),
        ("POST", "/admin/jobs/job_x/cancel"),
    ],
)
def test_admin_routes_need_the_admin_token(api, method: str, path: str) -> None:
    tenant = api.tenant()
    for headers in ({}, tenant, {"Authorization": "Bearer test-admin-tokeN"}):
        response = api.client.request(method, path, json={"name": "x"}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["type"] == "unauthorized"


def test_admin_api_is_off_without_a_token(make_api) -> None:
    with make_api(admin_token=None) as api:
        response = api.client.get("/admin/jobs", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503
    assert "LISTSERVE_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_keys_are_shown_once_and_never_stored(api) -> None:
    response = api.client.post("/admin/tenants", json={"name": "acme"}, headers=api.admin)
    key = response.json()["api_key"]
    database_file = api.services.settings.sqlite_path
    files = [database_file, database_file.with_name(database_file.name + "-wal")]
    contents = b"".join(path.read_bytes() for path in files if path.exists())
    assert key.encode() not in contents
    assert hash_key(key).encode() in contents
