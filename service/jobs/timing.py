"""How long a job has run and how long it has left, as the API reports them.

The estimate comes from the training loop (list_core/eta.py: measured cost per phase) and is
written with the job's throttled progress, stamped with when it was made; readers age it by
the time since, so a job polled between two writes does not seem to stand still.
"""

import time
from datetime import datetime
from typing import Any

from service.registry.states import JOB_CANCEL_REQUESTED, JOB_RUNNING, JOB_SUCCEEDED


def job_timing(
    status: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    progress: dict[str, Any] | None,
    now: float | None = None,
) -> dict[str, float | None]:
    """`{"elapsed_seconds", "eta_seconds"}`: None where not known (queued, or no estimate yet;
    a job that ended without succeeding has nothing left to estimate)."""
    now = time.time() if now is None else now
    elapsed = None
    if started_at is not None:
        end = finished_at.timestamp() if finished_at is not None else now
        elapsed = round(max(end - started_at.timestamp(), 0.0), 1)
    return {"elapsed_seconds": elapsed, "eta_seconds": eta_seconds(status, progress, now)}


def eta_seconds(
    status: str, progress: dict[str, Any] | None, now: float | None = None
) -> float | None:
    """Seconds a running job has left by its latest estimate, aged to `now`."""
    if status == JOB_SUCCEEDED:
        return 0.0
    if status not in (JOB_RUNNING, JOB_CANCEL_REQUESTED) or not progress:
        return None
    eta, estimated_at = progress.get("eta_seconds"), progress.get("estimated_at")
    if eta is None or estimated_at is None:
        return None
    now = time.time() if now is None else now
    return round(max(float(eta) - (now - float(estimated_at)), 0.0), 1)
