"""The load generators' open loop keeps its asked rate whatever each arrival costs."""

import asyncio
import random
import time

import pytest

from benchmarks.harness.arrivals import poisson_arrivals


def _drawn_arrivals(rate: float, seconds: float, seed: int) -> int:
    """How many arrivals the same draws place before the deadline."""
    rng, elapsed, count = random.Random(seed), 0.0, 0
    while (elapsed := elapsed + rng.expovariate(rate)) < seconds:
        count += 1
    return count


async def _run(rate: float, seconds: float, seed: int, work_s: float) -> list[float]:
    lags = []
    deadline = time.perf_counter() + seconds
    async for late in poisson_arrivals(rate, deadline, random.Random(seed)):
        lags.append(late)
        time.sleep(work_s)  # what sending and reading answers cost the loop
    return lags


def test_every_drawn_arrival_is_sent_even_when_each_costs_the_loop_time() -> None:
    started = time.perf_counter()
    lags = asyncio.run(_run(rate=1000, seconds=0.5, seed=4, work_s=0.0003))
    # A sleep of an exponential gap after each send would have sent about half as many:
    # every gap would also carry the 0.3 ms of work and the timer's late wake-up.
    assert len(lags) == _drawn_arrivals(1000, 0.5, seed=4) > 400
    assert time.perf_counter() - started < 0.5 + 0.25
    assert min(lags) >= 0.0


def test_a_loop_slower_than_the_rate_reports_how_late_it_sends() -> None:
    lags = asyncio.run(_run(rate=1000, seconds=0.1, seed=1, work_s=0.002))
    assert len(lags) == _drawn_arrivals(1000, 0.1, seed=1)
    assert max(lags) > 0.05  # 2 ms of work per 1 ms gap: the backlog grows


def test_leaving_the_loop_stops_the_arrivals() -> None:
    async def first_three() -> int:
        count = 0
        async for _ in poisson_arrivals(10_000, time.perf_counter() + 5, random.Random(0)):
            count += 1
            if count == 3:
                break
        return count

    started = time.perf_counter()
    assert asyncio.run(first_three()) == 3
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("rate", [0, -1.5])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    async def consume() -> None:
        async for _ in poisson_arrivals(rate, time.perf_counter() + 1, random.Random(0)):
            pass

    with pytest.raises(ValueError, match="rate must be positive"):
        asyncio.run(consume())
