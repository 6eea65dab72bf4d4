"""Security properties, each checked against the running service over real HTTP.

Routes refuse missing and wrong keys (the list comes from the OpenAPI document, so a new route
is covered the day it appears); no tenant reads another's tasks, jobs or events; admin routes
refuse tenant keys; keys are stored only as hashes, so a database dump holds nothing usable;
key checks are constant-time; request texts stay out of the logs; adapter files are never
unpickled; names never become paths. docs/security.md points here claim by claim.
"""

import ast
import hmac
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from sqlalchemy import event, inspect, text

from service.auth import hash_key
from service.settings import Settings
from service.store import AdapterStore, directory_sha256
from tests.reliability.conftest import (
    ADMIN,
    LiveServer,
    assert_error_format,
    create_tenant,
    live_server,
    train_task,
)
from tests.service.conftest import ADMIN_TOKEN, pg_schema, service_settings

PUBLIC_ROUTES = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/info")}
HOSTILE_NAME = "../../../outside/..\\..\\evil"
MISSING_ID = "tsk_000000000000000000000000"
REPO = Path(__file__).resolve().parents[2]
UNPICKLERS = {
    "pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
    "torch.load",
}

# A body that passes validation where a route needs one, so the handler (and its ownership
# check) runs instead of the 422 every body-less request gets.
BODIES = {
    "/predict": {"inputs": ["a great movie"]},
    "/examples": {"examples": [{"text": "a great movie", "label": "positive"}]},
    "/feedback": {"text": "a great movie", "label": "positive"},
}


def fill(template: str, ids: dict) -> str:
    """The path with each `{name}` replaced by `ids[name]`, or by a missing id."""
    return re.sub(r"\{(\w+)\}", lambda match: str(ids.get(match[1], MISSING_ID)), template)


def body_for(template: str) -> dict | None:
    return next((body for key, body in BODIES.items() if key in template), None)


@dataclass
class World:
    """A live service with two tenants, each owning one trained task."""

    live: LiveServer
    root: Path
    client: httpx.Client
    alice: dict[str, str]
    bob: dict[str, str]
    alices_task: dict
    bobs_task: dict

    @property
    def services(self) -> Any:
        return self.live.app.state.services


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_roberta_path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("security")
    settings = service_settings(root, tiny_roberta_path, auth_cache_seconds=0)
    with live_server(settings) as live, live.client() as client:
        alice = create_tenant(client, HOSTILE_NAME)
        bob = create_tenant(client, "bob")
        alices_task = train_task(client, alice, name=HOSTILE_NAME)
        bobs_task = train_task(client, bob, name="bob's task")
        yield World(live, root, client, alice, bob, alices_task, bobs_task)


def operations(client: httpx.Client) -> list[tuple[str, str]]:
    """Every (method, path template) in the service's own OpenAPI document."""
    spec = client.get("/openapi.json").json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


# Refusing missing and wrong keys ---------------------------------------------------------------


def test_only_operations_routes_are_public(world: World) -> None:
    """Everything but liveness, readiness, metrics and info needs a key."""
    spec = world.client.get("/openapi.json").json()
    public = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if not operation.get("security")
    }
    assert public == PUBLIC_ROUTES


def test_every_route_refuses_missing_and_wrong_keys(world: World) -> None:
    alice_key, admin_key = key_of(world.alice), ADMIN_TOKEN
    with world.services.database.read_session() as session:
        stored = session.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    wrong = {
        "no header": {},
        "scheme without token": {"Authorization": "Bearer"},
        "other scheme": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "bare token": {"Authorization": alice_key},
        "random key": bearer("lsk_" + secrets.token_urlsafe(32)),
        "truncated key": bearer(alice_key[:-1]),
        "extended key": bearer(alice_key + "x"),
        "case-changed key": bearer(alice_key.swapcase()),
        "stored hash as key": bearer(stored[0].key_hash),
        "stored prefix as key": bearer(stored[0].prefix),
        "admin token, one char off": bearer(admin_key[:-1] + "X"),
    }
    guarded = [op for op in operations(world.client) if op not in PUBLIC_ROUTES]
    checked = 0
    for method, template in guarded:
        path = fill(template, {"task_id": world.alices_task["id"], "version": 1})
        admin_route = template.startswith("/admin")
        other_kind = world.alice if admin_route else ADMIN  # the right key for the wrong door
        for name, headers in {**wrong, "the other kind of key": other_kind}.items():
            response = world.client.request(method, path, json={}, headers=headers)
            assert response.status_code == 401, (method, template, name, response.text)
            assert_error_format(response)
            assert response.json()["error"]["type"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert len(guarded) == 29 and checked == len(guarded) * (len(wrong) + 1)


# No cross-tenant reads -------------------------------------------------------------------------


def test_no_tenant_reaches_another_tenants_tasks_jobs_or_events(world: World) -> None:
    """Bob aims every route that takes an id at Alice's task and job: each answer is
    byte-identical to the one for an id that does not exist (404, or 401 on admin routes),
    nothing of Alice's appears in it, and her cursors are unknown to him."""
    alices_ids = {
        "task_id": world.alices_task["id"],
        "job_id": world.alices_task["job"]["id"],
        "version": 1,
    }
    missing_ids = {"task_id": MISSING_ID, "job_id": MISSING_ID.replace("tsk", "job"), "version": 1}
    alices_secrets = [
        world.alices_task["id"],
        world.alices_task["job"]["id"],
        HOSTILE_NAME,
        key_of(world.alice),
    ]
    attempts, reads = 0, 0
    for method, template in operations(world.client):
        if "{" not in template:
            continue
        body = body_for(template)
        theirs, absent = (
            world.client.request(method, fill(template, ids), json=body, headers=world.bob)
            for ids in (alices_ids, missing_ids)
        )
        attempts += 1
        same = (theirs.status_code, theirs.content) == (absent.status_code, absent.content)
        leaked = any(secret in theirs.text for secret in alices_secrets)
        reads += not same or leaked or theirs.status_code not in (401, 404)
    for cursor in alices_secrets[:2]:  # a paging cursor is an id too
        response = world.client.get("/tasks", params={"after": cursor}, headers=world.bob)
        attempts += 1
        reads += response.status_code != 422 or "unknown cursor" not in response.text
    listed = world.client.get("/tasks", headers=world.bob).json()["data"]
    assert [task["id"] for task in listed] == [world.bobs_task["id"]]
    assert (attempts, reads) == (22, 0)
    # Alice's task survived Bob's DELETE and still serves her.
    mine = world.client.post(
        f"/predict/{world.alices_task['id']}", json={"inputs": ["great"]}, headers=world.alice
    )
    assert mine.status_code == 200


# Keys at rest ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_service(request, tmp_path: Path, tiny_roberta_path: Path) -> Iterator[LiveServer]:
    with pg_schema() as pg_url:
        overrides = {"database_url": pg_url} if request.param == "postgresql" else {}
        with live_server(service_settings(tmp_path, tiny_roberta_path, **overrides)) as live:
            yield live


def dump_database(live: LiveServer) -> list[tuple]:
    """Every row of every table: what a leaked backup would hold."""
    engine = live.app.state.services.database.engine
    with engine.connect() as connection:
        return [
            (table, *row)
            for table in inspect(connection).get_table_names()
            for row in connection.execute(text(f'SELECT * FROM "{table}"'))
        ]


def test_a_database_dump_holds_no_usable_key(fresh_service: LiveServer) -> None:
    live = fresh_service
    with live.client() as client:
        keys = [key_of(create_tenant(client, f"tenant-{n}")) for n in range(3)]
        for key in keys:  # each key works, and is thereby in every cache and table it reaches
            assert client.get("/tasks", headers=bearer(key)).status_code == 200
        rows = dump_database(live)
        dump = "\n".join(map(repr, rows))
        sqlite_file = live.app.state.services.settings.sqlite_path
        if sqlite_file is not None:  # the raw file and its WAL, free pages included
            files = [sqlite_file, sqlite_file.with_name(sqlite_file.name + "-wal")]
            dump += "".join(p.read_bytes().decode("latin-1") for p in files if p.exists())
        for key in keys:
            secret = key.removeprefix("lsk_")
            windows = {secret[i : i + 12] for i in range(len(secret) - 11)}
            assert not any(window in dump for window in windows), "a key is in the dump"
            assert hash_key(key) in dump
        # Nothing in the dump opens a door: every stored string, tried as a key, is refused.
        stored = {cell for row in rows for cell in row if isinstance(cell, str) and len(cell) > 7}
        assert len(stored) >= 9
        for value in stored:
            for path in ("/tasks", "/admin/jobs"):
                response = client.get(path, headers=bearer(value))
                assert response.status_code == 401, (value, path)


# Constant-time comparison ----------------------------------------------------------------------


def test_the_admin_token_is_compared_with_hmac_compare_digest(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin token is a shared secret held in memory: it is compared with
    `hmac.compare_digest`, whose time does not depend on where the first difference is."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        calls.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    tokens = {ADMIN_TOKEN: 200, "x": 401, ADMIN_TOKEN[:-1] + "X": 401}
    for token, status in tokens.items():
        assert world.client.get("/admin/jobs", headers=bearer(token)).status_code == status
    assert calls == [(token.encode(), ADMIN_TOKEN.encode()) for token in tokens]


def test_tenant_keys_are_looked_up_by_hash_only(world: World) -> None:
    """A tenant key is never compared at all: its sha256 is looked up by equality in a unique
    index, so timing can only depend on a hash the caller cannot steer prefix by prefix; the
    secret itself never reaches the database."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(f"{statement} {parameters!r}")

    engine = world.services.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        good, wrong = key_of(world.bob), "lsk_" + secrets.token_urlsafe(32)
        assert world.client.get("/tasks", headers=bearer(good)).status_code == 200
        assert world.client.get("/tasks", headers=bearer(wrong)).status_code == 401
    finally:
        event.remove(engine, "before_cursor_execute", record)
    sql = "\n".join(statements)
    assert hash_key(good) in sql and hash_key(wrong) in sql
    assert good not in sql and wrong not in sql
    assert good.removeprefix("lsk_")[:12] not in sql


# Logs ------------------------------------------------------------------------------------------


def test_request_texts_stay_out_of_logs_by_default(world: World, json_log: io.StringIO) -> None:
    """Texts in every place a request carries them, on success and on refusal, leave no trace
    in the logs at the default level (test_logging.py covers training and prediction)."""
    assert Settings().log_level == "INFO"
    marker = "okapi-" + secrets.token_hex(6)
    tenant = world.bob
    requests: list[tuple[str, str, Any]] = [
        ("POST", "/tasks", {"name": marker, "labels": [marker, "b"], "examples": []}),
        ("POST", "/tasks", {"name": "x", "labels": ["a", "b"], "examples": [{"text": marker}]}),
        ("POST", "/tasks", {"name": "x", "labels": ["a", marker], "examples": [], "x": marker}),
        ("POST", f"/predict/{world.bobs_task['id']}", {"inputs": [marker, f"{marker} great"]}),
        ("POST", f"/predict/{world.bobs_task['id']}", {"inputs": [marker * 1000]}),
        ("POST", f"/predict/{world.alices_task['id']}", {"inputs": [marker]}),
        ("POST", "/tasks", f'{{"name": "{marker}"'),
    ]
    for method, path, body in requests:
        content = body if isinstance(body, str) else json.dumps(body)
        headers = {**tenant, "content-type": "application/json"}
        response = world.client.request(method, path, content=content, headers=headers)
        assert response.status_code < 500
    admin = world.client.post("/admin/tenants", json={"name": marker}, headers=ADMIN)
    assert admin.status_code == 201
    output = json_log.getvalue()
    assert '"logger": "service.access"' in output  # the requests were logged, without texts
    assert marker not in output
    assert admin.json()["api_key"] not in output and ADMIN_TOKEN not in output


# Adapter files are never unpickled -------------------------------------------------------------


class Detonator:
    """Unpickling this creates `path`: proof that something unpickled the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable, tuple]:
        return (Path.touch, (self.path,))


def test_a_pickled_adapter_is_refused_not_executed(world: World, tmp_path: Path) -> None:
    """Replace a served adapter's weights with a torch/pickle file that would run code when
    loaded, and register its digest so the integrity check passes: prediction must refuse the
    file (503), and the code must not have run."""
    client, services = world.client, world.services
    mallory = create_tenant(client, "mallory")
    task = train_task(client, mallory, name="to be tampered with")
    marker = tmp_path / "unpickled"
    with services.database.read_session() as session:
        relative = session.execute(
            text("SELECT path FROM adapter_versions WHERE task_id = :id"), {"id": task["id"]}
        ).scalar_one()
    directory = AdapterStore(services.settings.store).absolute(relative)
    weights = next(directory.glob("*.safetensors"))
    torch.save({"weight": Detonator(marker)}, weights)
    with services.database.session() as session:
        session.execute(
            text("UPDATE adapter_versions SET sha256 = :sha WHERE task_id = :id"),
            {"sha": directory_sha256(directory), "id": task["id"]},
        )
    services.cache.evict_task(task["id"])

    response = client.post(f"/predict/{task['id']}", json={"inputs": ["great"]}, headers=mallory)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "adapter_unavailable"
    assert not marker.exists()
    # The payload is live: any pickle-based loader (torch.load of the bytes here) fires it.
    torch.load(io.BytesIO(weights.read_bytes()), weights_only=False)
    assert marker.exists()


def test_no_code_path_can_unpickle(tmp_path: Path) -> None:
    """No module imports a pickle-based loader or calls `torch.load`, and Celery accepts JSON
    messages only, so neither a file nor a broker message is ever unpickled."""
    from worker.celery_app import create_celery
    from worker.settings import CelerySettings

    found = []
    for package in ("list_core", "service", "worker"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = {node.module.split(".")[0]}
                elif isinstance(node, ast.Attribute) and node.attr == "load":
                    names = {"torch.load"} if ast.unparse(node.value) == "torch" else set()
                else:
                    continue
                found += [f"{path.name}: {name}" for name in names & UNPICKLERS]
    assert found == []
    conf = create_celery(CelerySettings(broker_url="redis://127.0.0.1:6379/15")).conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_serializer == "json" and conf.result_accept_content in (None, ["json"])


# Names never become paths ----------------------------------------------------------------------


def test_names_never_become_paths(world: World) -> None:
    """Alice's tenant and task are both named `../../../outside/..\\..\\evil`; the store holds
    only id-named directories below its root, and nothing appeared outside it."""
    store = world.services.settings.store
    id_dirs = re.compile(r"^tnt_[0-9a-f]{24}/tsk_[0-9a-f]{24}/v\d+-[0-9a-f]{12}$")
    versions = [p.relative_to(store).as_posix() for p in store.glob("*/*/*")]
    assert versions and all(id_dirs.match(version) for version in versions), versions
    everything = {p.relative_to(world.root).parts[0] for p in world.root.rglob("*")}
    assert everything <= {
        "adapters",
        "listserve.sqlite",
        "listserve.sqlite-wal",
        "listserve.sqlite-shm",
    }
    assert not any("outside" in str(p) or "evil" in str(p) for p in world.root.rglob("*"))
    task = world.client.get(f"/tasks/{world.alices_task['id']}", headers=world.alice).json()
    assert task["name"] == HOSTILE_NAME  # the name is kept, as a label


@pytest.mark.parametrize(
    "hostile", ["..", "../tnt_x", "/etc", "tnt_a/../../x", "tnt\\x", "tnt_\x00", "", "t" * 65]
)
def test_the_store_refuses_any_id_that_is_not_a_plain_name(tmp_path: Path, hostile: str) -> None:
    """The last line of defence under the API's id pattern (test_store.py covers `../x`)."""
    store = AdapterStore(tmp_path)
    with pytest.raises(ValueError, match="safe path"):
        store.task_directory(hostile, "tsk_a")
    with pytest.raises(ValueError, match="safe path"):
        store.task_directory("tnt_a", hostile)
