"""Prometheus records of the jobs this process runs: each attempt's outcome and wall time."""

import time
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from service.metrics import JOB_SECONDS, JOBS_FINISHED

Outcome = TypeVar("Outcome")


def recorded(run: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """Wrap the job function: count its outcome, time it (an exception counts as `error`)."""

    @wraps(run)
    def timed(*args, **kwargs) -> Outcome:
        started = time.monotonic()
        outcome = "error"
        try:
            result = run(*args, **kwargs)
            outcome = str(getattr(result, "value", result))
            return result
        finally:
            JOBS_FINISHED.labels(outcome).inc()
            JOB_SECONDS.labels(outcome).observe(time.monotonic() - started)

    return timed
