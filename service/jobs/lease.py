"""Keeps a claimed job's lease alive from a side thread and relays cancel / lease loss.

The training loop polls `should_stop()` every step; that only reads two in-memory flags, so
the database sees one small UPDATE per heartbeat, not one per step.
"""

import logging
import threading

from service.jobs.context import JobContext
from service.registry.jobs import LeaseState, renew_lease

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, context: JobContext, job_id: str) -> None:
        self.context = context
        self.job_id = job_id
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def should_stop(self) -> bool:
        return (
            self.cancel_requested.is_set()
            or self.lease_lost.is_set()
            or self.context.shutdown.is_set()
        )

    def observe(self, state: LeaseState) -> None:
        """Apply what a lease write learned (the progress writer renews the lease too)."""
        if not state.held:
            self.lease_lost.set()
        elif state.cancel_requested:
            self.cancel_requested.set()

    def _run(self) -> None:
        while not self._stop.wait(self.context.heartbeat_seconds):
            try:
                with self.context.database.session() as session:
                    state = renew_lease(
                        session, self.job_id, self.context.owner, self.context.lease_seconds
                    )
            except Exception:
                log.exception("heartbeat failed", extra={"job_id": self.job_id})
                continue
            self.observe(state)
            if state.held is False:
                log.warning("lease lost", extra={"job_id": self.job_id})
                return
