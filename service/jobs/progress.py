"""Turns list_core's per-step progress callback into throttled job events.

A job event is written when the phase or session changes, and otherwise at most once per
`interval` seconds, so a long job leaves a readable trail without one row per step.
"""

import logging
import math
import time

from sqlalchemy.exc import SQLAlchemyError

from list_core.progress import Progress
from service.jobs.context import JobContext
from service.jobs.lease import LeaseKeeper
from service.registry.jobs import save_progress

log = logging.getLogger(__name__)

PROGRESS_FIELDS = ("session", "sessions", "phase", "step", "steps", "fraction")


class ProgressWriter:
    def __init__(self, context: JobContext, job_id: str, lease: LeaseKeeper) -> None:
        self.context = context
        self.job_id = job_id
        self.lease = lease
        self._last_written = -math.inf
        self._last_stage: tuple | None = None
        self._latest: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        self._latest = progress
        stage = (progress.session, progress.phase)
        due = time.monotonic() - self._last_written >= self.context.progress_interval_seconds
        if stage != self._last_stage or due:
            self._last_stage = stage
            self._write(progress)

    def finish(self) -> None:
        """Write the last step (fraction 1.0) if the throttle held it back."""
        if self._latest is not None:
            self._write(self._latest)

    def _write(self, progress: Progress) -> None:
        self._last_written = time.monotonic()
        data = progress.as_dict()
        summary = {key: data[key] for key in PROGRESS_FIELDS}
        summary["fraction"] = round(float(summary["fraction"]), 4)
        summary["trained_steps"] = data.get("trained_steps")  # the job's `trained_steps`
        # the phase-aware estimate, and when it was made, so readers can age it (jobs/timing.py)
        summary["elapsed_seconds"] = data.get("elapsed_seconds")
        summary["eta_seconds"] = data.get("eta_seconds")
        summary["estimated_at"] = round(time.time(), 3)
        event = {**summary, "losses": _finite(data["losses"]), "agreement": data["agreement"]}
        if data.get("evaluation_accuracy") is not None:
            event["evaluation_accuracy"] = data["evaluation_accuracy"]
        try:
            with self.context.database.session() as session:
                state = save_progress(
                    session,
                    self.job_id,
                    self.context.owner,
                    summary,
                    event,
                    self.context.lease_seconds,
                )
        except SQLAlchemyError:
            # A registry hiccup must not fail training. Anything else, such as Celery's soft
            # time limit raised in the middle of this write, belongs to the job.
            log.exception("could not record progress", extra={"job_id": self.job_id})
            return
        self.lease.observe(state)


def _finite(losses: dict) -> dict:
    """JSON has no NaN: a loss not yet measured is reported as null."""
    return {k: (float(v) if math.isfinite(v) else None) for k, v in losses.items()}
