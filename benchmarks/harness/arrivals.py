"""Open-loop Poisson arrivals on an absolute schedule, for the load generators.

Why absolute: sleeping an exponential gap after each send adds the loop's own overhead (the
sleep's late wake-up, the send, handling answers) to every gap, so the offered rate falls short
of the asked one; on the shared 2-core machine the serving benchmark's "half of peak" ran at
about 0.89 of its rate that way. Arrival times drawn in advance keep the asked rate: a late
wake-up shortens the next sleep instead of delaying every later arrival.
"""

import asyncio
import random
import time
from collections.abc import AsyncIterator


async def poisson_arrivals(
    rate: float, deadline: float, rng: random.Random
) -> AsyncIterator[float]:
    """Wait for each arrival at `rate` per second until `deadline` (a `time.perf_counter()`
    value), and yield how late (seconds) the loop woke for it. The caller stops early by
    leaving the loop."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    arrival = time.perf_counter()
    while True:
        arrival += rng.expovariate(rate)
        if arrival >= deadline:
            return
        await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        yield max(0.0, time.perf_counter() - arrival)
