"""`listserve_client` (clients/python) against a real `listserve serve` subprocess, on SQLite
and PostgreSQL: a tenant's whole life through the typed methods, the progress bar over the
event stream, typed errors naming the field, retries that honour `Retry-After`, predict inputs
split at the server's limit, and the same through `AsyncClient`."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from listserve_client import (
    AdminClient,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ValidationError,
)

from tests.faults.conftest import ServerProcess
from tests.service.conftest import (
    ADMIN_TOKEN,
    FAST_TRAINING,
    SLOW_TRAINING,
    pg_schema,
    service_settings,
)
from tests.worker.conftest import free_port

MAX_INPUTS = 4
EXAMPLES = [
    ("a great and fun movie", "positive"),
    ("superb acting and a lovely story", "positive"),
    ("a terrible and boring film", "negative"),
    ("dull plot with awful music", "negative"),
]
UNLABELED = ["good film", "bad ending", "nice cast", "weak story", "fun show", "odd one"]
LABELS = ["positive", "negative"]
WORDS = {"positive": "great", "negative": "terrible"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, tiny_roberta_path: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp(f"client-{request.param}")
    with pg_schema() as pg_url:
        overrides = {"database_url": pg_url} if request.param == "postgresql" else {}
        settings = service_settings(
            root,
            tiny_roberta_path,
            port=free_port(),
            max_predict_inputs=MAX_INPUTS,
            predict_rate_per_second=5.0,
            predict_burst=3,
            event_stream_max_seconds=1.0,  # `wait` must resume across streams
            **overrides,
        )
        process = ServerProcess(settings, root / "server.log")
        try:
            process.wait_ready()
            yield process
        finally:
            process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with AdminClient(server.url, ADMIN_TOKEN) as admin:
        tenant = admin.create_tenant("client-test")
    assert tenant.api_key.startswith("lsk_")
    with Client(server.url, tenant.api_key, max_predict_inputs=MAX_INPUTS) as tenant_client:
        yield tenant_client


def new_task(client: Client, name: str = "sentiment", **options):
    return client.create_task(
        name,
        LABELS,
        EXAMPLES,
        UNLABELED,
        label_words=WORDS,
        hyperparameters=options.pop("hyperparameters", FAST_TRAINING),
        **options,
    )


def test_a_tenants_whole_life(client: Client, server: ServerProcess, capfd) -> None:
    task = client.wait(new_task(client), progress=True, timeout=60)
    assert task.status == "ready" and task.adapter.version == 1
    drawn = capfd.readouterr().err
    assert "started" in drawn and "succeeded" in drawn and "%" in drawn  # the bar was drawn

    texts = [f"text number {i}" for i in range(10)]  # more than the server takes at once
    result = client.predict(task, texts)
    assert len(result.predictions) == 10 and result.adapter_version == 1
    assert len({p.id for p in result.predictions}) == 10
    one = client.predict(task, texts[7:8]).predictions[0]
    assert one.scores == pytest.approx(result.predictions[7].scores, abs=1e-5)

    stored = client.feedback(task, "negative", prediction_id=result.predictions[0])
    assert stored.example.text == "text number 0" and stored.prediction["version"] == 1
    added = client.add_examples(task, [("a charming warm film", "positive")], ["so so"])
    assert added.totals.examples == 6 and added.totals.feedback == 1
    picks = client.suggestions(task, limit=3)
    assert len(picks.data) == 3 and picks.adapter_version == 1

    job = client.wait_job(client.retrain(task, promote="always"), timeout=60)
    assert job.status == "succeeded" and job.result == {"version": 2, "promoted": True}
    assert job.metrics["labeled_examples"] == 6
    versions = client.versions(task)
    assert versions.serving_version == 2 and [v.version for v in versions.data] == [2, 1]
    assert client.promote(task, 1).serving
    assert client.predict(task, texts[:1]).adapter_version == 1
    assert client.predict(task, texts[:1], version=2).adapter_version == 2

    other = client.wait(new_task(client, name="other"), timeout=60)
    both = client.predict_many([task, other], texts[:5])  # 5 x 2 rows: three requests
    assert [r.task for r in both] == [task.id, other.id]
    assert all(len(r.predictions) == 5 for r in both)

    jobs = client.jobs(task)
    assert [j.id for j in jobs.data] == [job.id, task.job.id]
    kinds = [event.kind for event in client.events(job)]
    assert kinds[0] == "queued" and kinds[-2:] == ["promotion", "succeeded"]
    with pytest.raises(ConflictError):
        client.cancel(job)


def test_following_and_cancelling_a_running_job(client: Client) -> None:
    task = new_task(client, hyperparameters=SLOW_TRAINING)
    followed = []
    for event in client.events(task.job, follow=True):
        followed.append(event.kind)
        if followed.count("progress") == 2:
            assert client.cancel(task.job).status in ("cancel_requested", "cancelled")
    assert followed[0] == "queued" and followed[-1] == "cancelled"
    assert client.job(task.job).status == "cancelled"


def test_errors_are_typed_and_name_the_field(client: Client, server: ServerProcess) -> None:
    with pytest.raises(ValidationError) as refused:
        client.create_task("x", LABELS, [("hi", "meh"), ("ho", "positive")], label_words=WORDS)
    assert refused.value.status == 422 and refused.value.field == "examples[0].label"
    assert refused.value.message.startswith("examples[0].label: 'meh' is not one of")
    with pytest.raises(NotFoundError):
        client.task("tsk_000000000000000000000000")
    with pytest.raises(AuthenticationError), Client(server.url, "lsk_wrong") as stranger:
        stranger.tasks()


def test_429_is_retried_after_the_servers_retry_after(client: Client) -> None:
    task = client.wait(new_task(client), timeout=60)
    started = time.monotonic()
    for _ in range(6):  # burst 3 at 5/s: some are refused and retried
        assert client.predict(task, ["fine"]).predictions
    assert time.monotonic() - started >= 0.5
    impatient = Client(
        str(client._http.base_url),
        client._http.headers["Authorization"].removeprefix("Bearer "),
        retry=RetryPolicy(retries=0),
    )
    with impatient, pytest.raises(RateLimitError) as limited:
        for _ in range(10):
            impatient.predict(task, ["fine"])
    assert limited.value.retry_after >= 1


def test_the_async_client_does_the_same(client: Client, server: ServerProcess) -> None:
    key = client._http.headers["Authorization"].removeprefix("Bearer ")

    async def life() -> None:
        async with AsyncClient(server.url, key, max_predict_inputs=MAX_INPUTS) as aio:
            task = await aio.create_task(
                "async",
                LABELS,
                EXAMPLES,
                UNLABELED,
                label_words=WORDS,
                hyperparameters=FAST_TRAINING,
            )
            task = await aio.wait(task, timeout=60)
            assert task.status == "ready"
            result = await aio.predict(task, [f"t{i}" for i in range(9)])
            assert len(result.predictions) == 9
            kinds = [event.kind async for event in aio.events(task.job)]
            assert kinds[-1] == "succeeded"
            assert (await aio.versions(task)).serving_version == 1
            with pytest.raises(ValidationError) as refused:
                await aio.feedback(task, "meh", text="x")
            assert refused.value.field == "label"

    asyncio.run(life())
