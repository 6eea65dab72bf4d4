"""Through the real HTTP server (uvicorn on loopback): mixed batches, 429, no stale versions.

Adapters are registered through the service's own registry and store code, with weights far
enough apart that any mix-up between tasks or versions changes the answer.
"""

import asyncio
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Engine, event

from list_core.inference import Row, predict_mixed
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from service.api.app import create_app
from service.process.threads import usable_cores
from service.registry.adapters import register_adapter
from service.registry.db import Database
from service.registry.ids import new_id
from service.registry.jobs import claim_job
from service.registry.models import Job, utcnow
from service.registry.tasks import NewTask, Quotas, create_task
from service.registry.tenants import create_tenant
from service.settings import Settings
from service.store import AdapterStore
from tests.service.conftest import wait_until
from tests.serving.serving_texts import TEXTS

OWNER = "serving-test"


@dataclass
class Seeded:
    url: str
    headers: dict[str, str]
    tasks: dict[str, TaskModel]  # task id -> the model registered as its newest version
    tenant_id: str
    database: Database
    store: AdapterStore
    app: FastAPI


def register_version(database, store, backbone, tenant_id, task_id, job_id, version, model):
    with database.session() as session:
        claim_job(session, job_id, OWNER, 3600)
        stored = store.write(tenant_id, task_id, version, model, backbone)
        outcome = register_adapter(
            session,
            job_id,
            OWNER,
            version,
            stored.path,
            stored.sha256,
            stored.size_bytes,
            backbone.fingerprint,
            {},
        )
        assert outcome.outcome == "registered", outcome


def seed(
    root: Path, backbone, models: list[TaskModel]
) -> tuple[Database, AdapterStore, str, str, list[str]]:
    database = Database(f"sqlite:///{root / 'registry.sqlite'}")
    database.migrate()
    store = AdapterStore(root / "adapters")
    with database.session() as session:
        tenant, api_key = create_tenant(session, "serving")
    task_ids = []
    for index, model in enumerate(models):
        new = NewTask(
            tenant_id=tenant.id,
            name=f"task-{index}",
            labels=list(model.spec.labels),
            template=model.spec.template,
            label_words=dict(model.spec.label_words),
            method=model.method,
            head_kind=model.head_kind,
            hyperparameters={},
            examples=[{"text": "seeded", "label": model.spec.labels[0]}],
        )
        with database.session() as session:
            task, job = create_task(session, new, Quotas(100, 100), 3)
        register_version(database, store, backbone, tenant.id, task.id, job.id, 1, model)
        task_ids.append(task.id)
    return database, store, tenant.id, api_key, task_ids


@contextmanager
def http_server(app: FastAPI) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free loopback port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and server.servers):
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def serve(tmp_path, tiny_roberta_path, tiny_backbone, make_model):
    @contextmanager
    def start(models: list[TaskModel], **overrides) -> Iterator[Seeded]:
        database, store, tenant_id, key, task_ids = seed(tmp_path, tiny_backbone, models)
        settings = Settings(
            backbone=str(tiny_roberta_path),
            device="cpu",
            database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
            store=tmp_path / "adapters",
            admin_token="serving-admin",
            predict_rate_per_second=1e6,
            predict_burst=10**6,
            # fp32 unless a test asks: answers are compared with the fp32 reference forward.
            **{"serving_precision": "fp32", **overrides},
        )
        app = create_app(settings)
        try:
            with http_server(app) as url:
                yield Seeded(
                    url,
                    {"Authorization": f"Bearer {key}"},
                    dict(zip(task_ids, models, strict=True)),
                    tenant_id,
                    database,
                    store,
                    app,
                )
        finally:
            database.dispose()

    return start


# bf16 rounds a row's numbers differently with the batch around it (other shapes, other
# kernels), so its mixed batches match single-row calls only to bf16's precision.
PRECISION_TOLERANCE = {"fp32": 1e-5, "bf16": 5e-3}


@pytest.mark.parametrize(
    ("precision", "prepack"), [("fp32", True), ("bf16", True), ("bf16", False)]
)
def test_concurrent_http_predictions_match_single_task_calls(
    serve, tiny_backbone, make_model, precision, prepack
):
    models = [make_model(11), make_model(12), make_model(13), make_model(14, "classic", 3)]
    rng = random.Random(3)
    with serve(
        models,
        max_wait_ms=20.0,
        max_batch_rows=16,
        serving_precision=precision,
        serving_prepack=prepack,
    ) as seeded:
        task_ids = list(seeded.tasks)
        requests = [
            (rng.choice(task_ids), [rng.choice(TEXTS) for _ in range(rng.randint(1, 3))])
            for _ in range(40)
        ]

        async def fire():
            # A generous timeout: this test checks answers, not speed, on a shared CI machine.
            async with httpx.AsyncClient(
                base_url=seeded.url, headers=seeded.headers, timeout=30.0
            ) as client:
                before = (await client.get("/info")).json()["batcher"]
                responses = await asyncio.gather(
                    *(
                        client.post(f"/predict/{task}", json={"inputs": texts})
                        for task, texts in requests
                    )
                )
                info = (await client.get("/info")).json()
            return responses, before, info

        responses, before, info = asyncio.run(fire())
    after = info["batcher"]
    assert info["backbone"]["serving_forward"] == "scripted"  # the service default
    assert info["backbone"]["serving_precision"] == precision
    packed = prepack and precision == "bf16" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert info["backbone"]["serving_packed_weights"] is packed
    assert after["model_threads"] == min(2, usable_cores())  # auto, on the CPU
    assert after["apply_mode"] == "group"  # auto, for the scripted forward on the CPU
    assert info["adapter_cache"]["leases"] == 0  # every answered request let its adapter go
    single_row = serving_backbone(tiny_backbone, precision, scripted=True, prepack=prepack)
    expected: dict[tuple[str, str], list[float]] = {}
    for (task, texts), response in zip(requests, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["task"] == task and body["adapter_version"] == 1
        model = seeded.tasks[task]
        for text, prediction in zip(texts, body["predictions"], strict=True):
            if (task, text) not in expected:
                expected[task, text] = predict_mixed(single_row, [Row(model, text)])[0]
            want = expected[task, text]
            got = [prediction["scores"][label] for label in model.spec.labels]
            assert got == pytest.approx(want, abs=PRECISION_TOLERANCE[precision])
    rows = sum(len(texts) for _, texts in requests)
    assert after["rows"] - before["rows"] == rows
    assert after["forwards"] - before["forwards"] < len(requests)  # tasks really shared forwards


def test_concurrent_predictions_reuse_a_few_registry_connections(serve, make_model):
    """Each predict reads the registry; 64 at once must not open a connection apiece (the
    shared 40-thread pool did, past the SQLAlchemy pool's 5, with SQLite pragmas each time)."""
    with serve([make_model(21), make_model(22)], max_wait_ms=5.0) as seeded:
        task_ids = list(seeded.tasks)
        opened: list[int] = []

        def count(dbapi_connection, record) -> None:
            opened.append(threading.current_thread().name)

        event.listen(Engine, "connect", count)
        try:

            async def fire() -> list[httpx.Response]:
                limits = httpx.Limits(max_connections=64)
                async with httpx.AsyncClient(
                    base_url=seeded.url, headers=seeded.headers, limits=limits, timeout=60
                ) as client:
                    return await asyncio.gather(
                        *(
                            client.post(f"/predict/{task_ids[i % 2]}", json={"inputs": ["fine"]})
                            for i in range(192)
                        )
                    )

            responses = asyncio.run(fire())
        finally:
            event.remove(Engine, "connect", count)
    assert [r.status_code for r in responses] == [200] * len(responses)
    assert len(opened) <= 5


def test_one_client_at_a_time_is_not_held_for_max_wait(serve, make_model):
    """Back-to-back requests of one client: nothing else is on its way while a flush waits, so
    none waits for the 1.5 s `max_wait_ms`; concurrent ones still share forwards."""
    with serve([make_model(21)], max_wait_ms=1500.0) as seeded:
        (task,) = seeded.tasks
        with httpx.Client(base_url=seeded.url, headers=seeded.headers, timeout=60) as client:
            client.post(f"/predict/{task}", json={"inputs": ["warm the cache"]})
            for text in TEXTS[:4]:
                started = time.monotonic()
                answer = client.post(f"/predict/{task}", json={"inputs": [text]})
                assert answer.status_code == 200
                assert time.monotonic() - started < 1.0
            before = client.get("/info").json()["batcher"]

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(
                base_url=seeded.url, headers=seeded.headers, timeout=60
            ) as client:
                return await asyncio.gather(
                    *(
                        client.post(f"/predict/{task}", json={"inputs": [TEXTS[i % len(TEXTS)]]})
                        for i in range(8)
                    )
                )

        burst = asyncio.run(fire())
        after = seeded.app.state.services.batcher.stats()
    assert [r.status_code for r in burst] == [200] * 8
    assert after["forwards"] - before["forwards"] < 8
    assert after["arriving_requests"] == 0


def test_full_queue_answers_429_with_retry_after(serve, make_model):
    with serve([make_model(21)], max_queue_rows=2, max_wait_ms=600.0) as seeded:
        (task,) = seeded.tasks
        seeded.app.state.services.batcher.adaptive_wait = False  # always hold the flush open

        async def fire():
            async with httpx.AsyncClient(base_url=seeded.url, headers=seeded.headers) as client:
                await client.post(f"/predict/{task}", json={"inputs": ["warm the cache"]})
                first = asyncio.ensure_future(
                    client.post(f"/predict/{task}", json={"inputs": TEXTS[:2]})
                )
                await asyncio.sleep(0.2)  # first now waits in the queue for its flush
                refused = await client.post(f"/predict/{task}", json={"inputs": [TEXTS[0]]})
                return await first, refused, (await client.get("/info")).json()

        first, refused, info = asyncio.run(fire())
    assert info["adapter_cache"]["leases"] == 0  # the refused request let its adapter go too
    assert first.status_code == 200
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "overloaded"
    assert error["details"] == {"queued_rows": 2, "max_queue_rows": 2}


def test_a_client_that_disconnects_while_queued_costs_no_forward(serve, make_model):
    """Its rows wait for a flush held open 1.5 s; the client gives up after 0.3 s and closes
    the connection, so by the flush its request is cancelled and dropped, not run."""
    with serve([make_model(41)], max_wait_ms=1500.0) as seeded:
        (task,) = seeded.tasks
        seeded.app.state.services.batcher.adaptive_wait = False  # always hold the flush open
        with httpx.Client(base_url=seeded.url, headers=seeded.headers) as client:
            client.post(f"/predict/{task}", json={"inputs": ["warm the cache"]})
            before = client.get("/info").json()["batcher"]
            with pytest.raises(httpx.ReadTimeout):
                client.post(f"/predict/{task}", json={"inputs": TEXTS[:3]}, timeout=0.3)
            wait_until(
                lambda: (
                    client.get("/info").json()["batcher"]["dropped_cancelled"]
                    > before["dropped_cancelled"]
                ),
                timeout=10,
                what="the disconnected request to be dropped",
            )
            info = client.get("/info").json()
    after = info["batcher"]
    assert after["dropped_cancelled"] - before["dropped_cancelled"] == 1
    assert after["forwards"] == before["forwards"]  # no forward ran for it
    assert after["rows"] == before["rows"]
    assert info["adapter_cache"]["leases"] == 0  # and its adapter was let go


def test_new_version_is_served_at_once_and_the_old_never_again(serve, tiny_backbone, make_model):
    old, new = make_model(31), make_model(32)
    text = TEXTS[0]
    with serve([old]) as seeded:
        (task,) = seeded.tasks
        with httpx.Client(base_url=seeded.url, headers=seeded.headers) as client:
            before = client.post(f"/predict/{task}", json={"inputs": [text]}).json()
            with seeded.database.session() as session:
                job = Job(  # a retraining job this test holds, so the job runner leaves it be
                    id=new_id("job"),
                    task_id=task,
                    tenant_id=seeded.tenant_id,
                    status="running",
                    attempts=1,
                    max_attempts=3,
                    lease_owner=OWNER,
                    lease_expires_at=utcnow() + timedelta(hours=1),
                    created_at=utcnow(),
                )
                session.add(job)
            register_version(
                seeded.database, seeded.store, tiny_backbone, seeded.tenant_id, task, job.id, 2, new
            )
            after = [
                client.post(f"/predict/{task}", json={"inputs": [text]}).json() for _ in range(3)
            ]
    labels = old.spec.labels
    want_old = predict_mixed(tiny_backbone, [Row(old, text)])[0]
    want_new = predict_mixed(tiny_backbone, [Row(new, text)])[0]
    assert want_old != pytest.approx(want_new, abs=1e-3)
    assert before["adapter_version"] == 1
    assert [before["predictions"][0]["scores"][label] for label in labels] == pytest.approx(
        want_old, abs=1e-5
    )
    for answer in after:
        assert answer["adapter_version"] == 2
        got = [answer["predictions"][0]["scores"][label] for label in labels]
        assert got == pytest.approx(want_new, abs=1e-5)


def test_the_service_bounds_gil_waits_with_its_switch_interval(serve, make_model):
    """Cold loads and the model thread re-take the GIL after every torch call; the service sets
    the interpreter's switch interval from its setting so each wait is short."""
    previous = sys.getswitchinterval()
    try:
        with serve([make_model(21)], gil_switch_interval_ms=2.5):
            assert sys.getswitchinterval() == pytest.approx(0.0025)
    finally:
        sys.setswitchinterval(previous)
    with pytest.raises(ValidationError, match="gil_switch_interval_ms"):
        Settings(gil_switch_interval_ms=0)
