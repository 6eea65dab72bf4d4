"""DynamicBatcher: mixed-task batches match single-task predictions; overload and disconnects."""

import asyncio
import contextlib
import gc
import os
import queue
import random
import sys
import threading
import time
import weakref
from typing import get_args

import pytest
import torch
from pydantic import ValidationError

from list_core.adapters import APPLY_MODES, AUTO_APPLY_MODE, resolve_apply_mode
from list_core.inference import Row, predict_mixed
from list_core.serving.speedups import serving_backbone
from service.serving.baselines import BATCHINGS, SwapBatching, batching_for
from service.serving.batcher import DynamicBatcher
from service.serving.errors import BatcherStoppedError, QueueFullError, RequestTooLargeError
from service.serving.flush import QueuedRequest
from service.serving.predictor import cancel_on_disconnect
from service.settings import BatchMode, ExpertSettings, Settings
from tests.serving.conftest import make_batcher
from tests.serving.serving_texts import TEXTS
from tests.thread_nice import linux_only, nice_with_room_for, own_nice


@pytest.fixture(scope="module")
def models(make_model):
    """Four tasks: three prompt tasks with different adapters and a 3-label classic task."""
    return [make_model(1), make_model(2), make_model(3), make_model(4, "classic", labels=3)]


def expected(backbone, rows: list[Row], memo: dict | None = None) -> list[list[float]]:
    """Each row predicted alone, single-task, through list_core's own inference."""
    memo = {} if memo is None else memo
    for row in rows:
        key = (id(row.model), row.text)
        if key not in memo:
            memo[key] = predict_mixed(backbone, [row])[0]
    return [memo[(id(row.model), row.text)] for row in rows]


def requests_for(models, count: int, seed: int = 0) -> list[list[Row]]:
    rng = random.Random(seed)
    return [
        [Row(rng.choice(models), rng.choice(TEXTS)) for _ in range(rng.randint(1, 3))]
        for _ in range(count)
    ]


@pytest.mark.parametrize("threads", [1, 2], ids=["one-model-thread", "two-model-threads"])
@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
@pytest.mark.parametrize("mode", get_args(BatchMode))
def test_concurrent_mixed_batches_match_single_task_predictions(
    tiny_backbone, models, mode, scripted, threads
):
    """With two model threads the flushes run side by side; in `swap` mode each thread copies
    into its own slot, so one thread's swap never changes the adapter the other is running."""
    requests = requests_for(models, 24)
    served = serving_backbone(tiny_backbone, scripted=scripted)
    batcher = make_batcher(served, mode, max_batch_rows=16, max_wait_ms=20, model_threads=threads)

    async def scenario():
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(rows) for rows in requests))
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    memo: dict = {}
    for rows, answer in zip(requests, answers, strict=True):
        assert len(answer) == len(rows)
        for got, want in zip(answer, expected(tiny_backbone, rows, memo), strict=True):
            assert got == pytest.approx(want, abs=1e-5)
    stats = batcher.stats()
    assert stats["rows"] == sum(len(rows) for rows in requests)
    if mode == "mixed":
        assert stats["forwards"] < len(requests)  # requests really shared forwards
    if mode == "unbatched":
        assert stats["forwards"] == len(requests)
    if mode == "swap":
        assert stats["adapter_swaps"] >= len(models)


def test_tasks_disagree_so_mixing_them_up_would_be_caught(tiny_backbone, models, make_model):
    probabilities = [predict_mixed(tiny_backbone, [Row(m, TEXTS[0])])[0] for m in models[:3]]
    assert probabilities[0] != pytest.approx(probabilities[1], abs=1e-3)
    assert probabilities[1] != pytest.approx(probabilities[2], abs=1e-3)
    same_head_other_adapters = make_model(1)
    same_head_other_adapters.adapters.load_state_dict(models[1].adapters.state_dict())
    swapped = predict_mixed(tiny_backbone, [Row(same_head_other_adapters, TEXTS[0])])[0]
    assert swapped != pytest.approx(probabilities[0], abs=1e-3)  # adapters matter, not just heads


@linux_only
def test_model_threads_run_at_a_lower_priority_than_the_event_loop(tiny_backbone, models):
    """So a cold load or a request's parsing does not wait behind a forward for a core."""
    base = nice_with_room_for(4)
    batcher = make_batcher(tiny_backbone, max_wait_ms=1, model_threads=2, model_thread_nice=4)

    async def scenario():
        await batcher.start()
        try:
            await batcher.submit(requests_for(models, 1)[0])
            return [os.getpriority(os.PRIO_PROCESS, t.native_id) for t in batcher._threads]
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == [base + 4, base + 4]
    assert own_nice() == base
    assert batcher.stats()["model_thread_nice"] == base + 4


@pytest.mark.parametrize("model_threads", [1, 2])
def test_model_runs_on_its_dedicated_threads(tiny_backbone, models, monkeypatch, model_threads):
    threads: set[str] = set()
    original = tiny_backbone.hidden_states

    def spy(input_ids, attention_mask):
        threads.add(threading.current_thread().name)
        return original(input_ids, attention_mask)

    monkeypatch.setattr(tiny_backbone, "hidden_states", spy)
    batcher = make_batcher(tiny_backbone, max_wait_ms=1, model_threads=model_threads)

    async def scenario():
        await batcher.start()
        await asyncio.gather(*(batcher.submit(rows) for rows in requests_for(models, 10)))
        await batcher.stop()
        return threading.current_thread().name

    loop_thread = asyncio.run(scenario())
    ours = {f"listserve-model-{index}" for index in range(model_threads)}
    assert threads and threads <= ours and loop_thread not in threads
    assert not any(thread.name in ours for thread in threading.enumerate())  # all joined


def test_full_queue_raises_queue_full_with_retry_after(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_queue_rows=4, max_wait_ms=300, adaptive_wait=False)

    async def scenario():
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit([Row(models[0], t) for t in TEXTS[:3]]))
        await asyncio.sleep(0.02)  # first is waiting for its flush to fill up
        with pytest.raises(QueueFullError) as caught:
            await batcher.submit([Row(models[1], TEXTS[0]), Row(models[1], TEXTS[1])])
        accepted = await batcher.submit([Row(models[1], TEXTS[0])])  # one row still fits
        answer = await first
        await batcher.stop()
        return caught.value, accepted, answer

    error, accepted, answer = asyncio.run(scenario())
    assert error.retry_after_s > 0 and error.queued_rows == 3 and error.max_queue_rows == 4
    assert len(accepted) == 1 and len(answer) == 3
    assert batcher.stats()["rejected"] == 1


def test_request_larger_than_queue_is_refused_outright(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_queue_rows=2)

    async def scenario():
        await batcher.start()
        try:
            with pytest.raises(RequestTooLargeError):
                await batcher.submit([Row(models[0], t) for t in TEXTS[:3]])
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_cancelled_request_is_dropped_before_its_forward(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_wait_ms=200, adaptive_wait=False)

    async def scenario():
        await batcher.start()
        kept = asyncio.ensure_future(batcher.submit([Row(models[0], TEXTS[0])]))
        gone = asyncio.ensure_future(batcher.submit([Row(models[1], t) for t in TEXTS]))
        await asyncio.sleep(0.02)
        gone.cancel()
        answer = await kept
        await batcher.stop()
        return answer, gone

    answer, gone = asyncio.run(scenario())
    assert gone.cancelled() and len(answer) == 1
    stats = batcher.stats()
    assert stats["dropped_cancelled"] == 1
    assert stats["rows"] == 1 and stats["forwards"] == 1


def test_cancel_on_disconnect_cancels_the_submission(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_wait_ms=200, adaptive_wait=False)

    async def scenario():
        await batcher.start()
        client_gone = asyncio.Event()

        async def disconnected():
            await client_gone.wait()
            return {"type": "http.disconnect"}

        pending = asyncio.ensure_future(
            cancel_on_disconnect(batcher.submit([Row(models[0], TEXTS[1])]), disconnected)
        )
        await asyncio.sleep(0.02)
        client_gone.set()
        result = await pending
        connected = await cancel_on_disconnect(
            batcher.submit([Row(models[0], TEXTS[1])]), asyncio.Event().wait
        )
        await batcher.stop()
        return result, connected

    result, connected = asyncio.run(scenario())
    assert result is None and len(connected) == 1
    assert batcher.stats()["dropped_cancelled"] == 1 and batcher.stats()["rows"] == 1


def test_lone_request_is_not_held_for_max_wait_but_a_burst_is_batched(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_wait_ms=400)

    async def scenario():
        await batcher.start()
        started = time.perf_counter()
        await batcher.submit([Row(models[0], TEXTS[0])])  # nothing else is arriving
        lone = time.perf_counter() - started
        await asyncio.gather(*(batcher.submit([Row(m, TEXTS[1])]) for m in models * 4))
        await batcher.stop()
        return lone

    lone = asyncio.run(scenario())
    assert lone < 0.3  # not held open for the 400 ms max wait
    stats = batcher.stats()
    assert stats["requests"] == 17 and stats["forwards"] <= 3  # the burst shared forwards


def _second_request_while_announced(batcher, announcement, rows):
    """Submit rows[0], and 0.3 s later rows[1] while `announcement` still holds; (whether the
    first was still waiting then, both answers)."""

    async def scenario():
        await batcher.start()
        with announcement:
            first = asyncio.create_task(batcher.submit(rows[:1]))
            await asyncio.sleep(0.3)  # the second request is on its way
            held = not first.done()
            second = asyncio.create_task(batcher.submit(rows[1:]))
            await asyncio.sleep(0)  # queued while still announced
        answers = await asyncio.gather(first, second)
        await batcher.stop()
        return held, answers

    return asyncio.run(scenario())


def _check_shared(batcher, tiny_backbone, rows, announced, held, answers) -> None:
    assert held is announced
    assert batcher.stats()["forwards"] == (1 if announced else 2)
    for answer, want in zip(answers, expected(tiny_backbone, rows), strict=True):
        assert answer[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("announced", [True, False])
def test_a_flush_waits_only_while_a_request_is_arriving(tiny_backbone, models, announced):
    """A request on its way (the predict route announces it from its start until it submits)
    is awaited up to `max_wait_ms` and shares the waiting row's forward; with none on its way
    the first row runs at once, however long `max_wait_ms` is."""
    batcher = make_batcher(tiny_backbone, max_wait_ms=5000)
    rows = [Row(models[0], TEXTS[0]), Row(models[1], TEXTS[1])]
    announcement = batcher.arriving() if announced else contextlib.nullcontext()
    held, answers = _second_request_while_announced(batcher, announcement, rows)
    _check_shared(batcher, tiny_backbone, rows, announced, held, answers)
    assert batcher.stats()["arriving_requests"] == 0


@pytest.mark.parametrize("announced", [True, False])
def test_a_flush_waits_for_rows_announced_as_incoming(tiny_backbone, models, announced):
    """A row announced while its adapter loads is awaited and shares the waiting row's forward;
    unannounced, the first row runs alone (`max_wait_ms` is 0 here)."""
    batcher = make_batcher(tiny_backbone, max_wait_ms=0, max_wait_for_loads_ms=5000)
    rows = [Row(models[0], TEXTS[0]), Row(models[1], TEXTS[1])]
    held, answers = _second_request_while_announced(
        batcher, batcher.incoming(1 if announced else 0), rows
    )
    _check_shared(batcher, tiny_backbone, rows, announced, held, answers)


def test_rows_announced_but_never_submitted_hold_a_flush_only_up_to_its_limit(
    tiny_backbone, models
):
    """A load that fails or a client that leaves never submits its rows: the flush still runs."""
    batcher = make_batcher(tiny_backbone, max_wait_ms=0, max_wait_for_loads_ms=100)

    async def scenario():
        await batcher.start()
        with batcher.incoming(3):
            answer = await asyncio.wait_for(batcher.submit([Row(models[0], TEXTS[0])]), 10)
            still_announced = batcher.stats()["incoming_rows"]
        await batcher.stop()
        return answer, still_announced

    answer, still_announced = asyncio.run(scenario())
    assert still_announced == 3 and batcher.stats()["incoming_rows"] == 0
    assert answer[0] == pytest.approx(expected(tiny_backbone, [Row(models[0], TEXTS[0])])[0])


def test_negative_waits_are_refused_by_name(tiny_backbone, monkeypatch):
    for name in ("max_wait_ms", "max_wait_for_loads_ms"):
        with pytest.raises(ValueError, match=f"{name} must be >= 0"):
            make_batcher(tiny_backbone, **{name: -1})
    monkeypatch.setenv("LISTSERVE_MAX_WAIT_FOR_LOADS_MS", "-5")
    with pytest.raises(ValueError, match="max_wait_for_loads_ms"):
        Settings()


def test_chunks_bucket_by_length_and_respect_token_budget(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone, max_batch_rows=64, max_batch_tokens=200)
    short = [Row(models[0], "fun")] * 12
    long = [Row(models[1], " ".join(["the movie was great"] * 8))] * 12
    rng = random.Random(1)
    rows = short + long
    rng.shuffle(rows)

    async def scenario():
        await batcher.start()
        await batcher.submit(rows)
        await batcher.stop()

    asyncio.run(scenario())
    chunks = batcher._chunks(batcher._encode([QueuedRequest(rows, None, None, 0.0, 0)]))
    for chunk in chunks:
        lengths = [len(item.encoded.input_ids) for item in chunk]
        assert len(chunk) * max(lengths) <= 200
        assert len(set(lengths)) == 1  # short and long rows never share a chunk here
    assert batcher.stats()["padding_fraction"] == pytest.approx(0.0)


def test_submit_before_start_is_refused(tiny_backbone, models):
    batcher = make_batcher(tiny_backbone)

    async def scenario():
        with pytest.raises(BatcherStoppedError):
            await batcher.submit([Row(models[0], TEXTS[0])])

    asyncio.run(scenario())


def test_the_batch_mode_is_a_setting_and_an_unknown_one_is_refused_by_name(monkeypatch):
    assert set(BATCHINGS) == set(get_args(BatchMode))  # every mode the setting allows runs
    assert Settings().expert.batch_mode == "mixed"
    monkeypatch.setenv("LISTSERVE_BATCH_MODE", " Swap ")
    assert Settings().expert.batch_mode == "swap"
    monkeypatch.setenv("LISTSERVE_BATCH_MODE", "bogus")
    with pytest.raises(ValidationError, match="batch_mode"):
        Settings()


def test_the_service_builds_its_batcher_from_the_settings_alone(tiny_backbone):
    settings = Settings(
        max_batch_rows=7,
        max_batch_tokens=300,
        max_wait_ms=3,
        max_wait_for_loads_ms=9,
        max_queue_rows=11,
        compute_nice=0,
        heap_trim_interval_s=0,
    )
    batcher = DynamicBatcher.from_settings(
        tiny_backbone, settings, batching_for("per_adapter", tiny_backbone), model_threads=2
    )
    limits = (batcher.max_batch_rows, batcher.max_batch_tokens, batcher.max_queue_rows)
    assert limits == (7, 300, 11)
    assert (batcher.max_wait_s, batcher.max_wait_for_loads_s) == pytest.approx((0.003, 0.009))
    stats = batcher.stats()
    assert stats["mode"] == "per_adapter" and stats["model_threads"] == 2
    assert stats["apply_mode"] == "gather"  # auto, for the eager forward


def test_model_threads_must_be_positive(tiny_backbone, monkeypatch):
    with pytest.raises(ValueError, match="model_threads must be >= 1"):
        make_batcher(tiny_backbone, model_threads=0)
    monkeypatch.setenv("LISTSERVE_MODEL_THREADS", "-1")  # 0 is auto
    with pytest.raises(ValueError, match="model_threads"):
        Settings()
    monkeypatch.setenv("LISTSERVE_MODEL_THREADS", "2")
    assert Settings().expert.model_threads == 2
    assert make_batcher(tiny_backbone, model_threads=2).stats()["model_threads"] == 2


def test_each_model_thread_swaps_into_its_own_slot(tiny_backbone, models):
    """Swap mode stands for separate single-model workers: a slot shared by two threads would
    let one thread's swap change the weights under the other's forward."""
    swap = SwapBatching(tiny_backbone)
    other: list = []
    thread = threading.Thread(target=lambda: other.append(swap.swap_in(models[0])))
    thread.start()
    thread.join()
    mine = swap.swap_in(models[1])
    assert mine is not other[0]
    assert swap.swap_in(models[2]) is mine  # one slot per thread, reused
    assert swap.swaps == 3
    key = mine.site_keys[0]
    assert torch.equal(other[0].down[key], models[0].adapters.down[key])  # left as it was


def test_unknown_apply_mode_is_rejected_by_name(tiny_backbone, monkeypatch):
    with pytest.raises(ValueError, match="apply_mode must be one of"):
        make_batcher(tiny_backbone, apply_mode="scatter")
    monkeypatch.setenv("LISTSERVE_APPLY_MODE", "scatter")
    with pytest.raises(ValueError, match="apply_mode"):
        Settings()
    monkeypatch.setenv("LISTSERVE_APPLY_MODE", "gather")
    assert Settings().expert.apply_mode == "gather"
    # The settings restate the modes so they load without torch; they must stay the same.
    assert get_args(ExpertSettings.model_fields["apply_mode"].annotation) == (
        AUTO_APPLY_MODE,
        *APPLY_MODES,
    )


def test_auto_apply_mode_groups_only_the_scripted_forward_on_a_cpu() -> None:
    assert Settings().expert.apply_mode == AUTO_APPLY_MODE
    assert resolve_apply_mode("auto", torch.device("cpu")) == "group"
    assert resolve_apply_mode("auto", torch.device("cpu"), scripted=False) == "gather"
    assert resolve_apply_mode("auto", torch.device("cuda:0")) == "gather"
    assert resolve_apply_mode("gather", torch.device("cpu")) == "gather"
    with pytest.raises(ValueError, match="apply_mode must be one of"):
        resolve_apply_mode("scatter", torch.device("cpu"))


def test_an_answered_batch_keeps_no_task_model_alive(tiny_backbone, make_model):
    """Once its requests are answered a served model must be collectable while the model
    thread waits for more; otherwise an evicted adapter would stay resident uncounted."""
    batcher = make_batcher(tiny_backbone)

    async def scenario() -> weakref.ref:
        await batcher.start()
        model = make_model(99)
        await batcher.submit([Row(model, text) for text in TEXTS[:3]])
        return weakref.ref(model)

    async def served_then_stopped() -> tuple[bool, bool]:
        served = await scenario()
        gc.collect()
        dead = served() is None
        await batcher.stop()
        return dead, batcher.stats()["rows"] == 3

    assert asyncio.run(served_then_stopped()) == (True, True)


def test_a_timed_wait_for_requests_ends_when_another_model_thread_takes_the_request(
    tiny_backbone,
):
    """A flush waits for more requests with short timed gets while the other model thread
    may take the request a put woke it for. CPython 3.11's SimpleQueue then blocked that get
    for good, and the flush's requests waited for the next request to arrive (a client hang
    at the end of a burst). Reproduced here by holding the GIL past the get's deadline."""
    waiting_queue = make_batcher(tiny_backbone)._queue
    outcome: list[str] = []

    def collecting_thread() -> None:
        try:
            outcome.append(waiting_queue.get(timeout=0.002))
        except queue.Empty:
            outcome.append("timed out")

    thread = threading.Thread(target=collecting_thread)
    thread.start()
    time.sleep(0.001)  # inside its get, GIL released
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # this thread keeps the GIL while it spins
    try:
        waiting_queue.put("request")
        spin_until = time.perf_counter() + 0.01
        while time.perf_counter() < spin_until:  # past the waiting get's deadline
            pass
        taken_by_the_other_thread = waiting_queue.get_nowait()
    finally:
        sys.setswitchinterval(interval)
    thread.join(timeout=2.0)
    stuck = thread.is_alive()
    if stuck:
        waiting_queue.put("rescue")  # let the thread end before failing
        thread.join()
    assert not stuck, "a timed get on the batcher's queue outlived its timeout"
    assert taken_by_the_other_thread == "request" and outcome == ["timed out"]
