"""The API side of Celery: hands persisted jobs to the broker and keeps them moving.

`submit` publishes "run job X" to the training queue; when the broker is down it raises
`RunnerUnavailable` (the API answers 503, the job stays `queued`). A sweep, at start-up and
then every `sweep_interval_seconds`, sends again:
- jobs that never reached the broker (`enqueued_at` unset: the broker was down);
- jobs whose worker stopped heartbeating (the lease sweep puts them back to `queued` as a new
  attempt), which cannot wait for Redis's visibility timeout since that outlasts any job;
- jobs handed over long ago (`requeue_after_seconds`) and still queued: a broker that lost them.
Sending a job twice is harmless: the worker's claim drops the extra message. Every API replica
sweeps; the registry's row locks and `enqueued_at` keep them from all sending the same job.
"""

import logging

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from service.jobs.context import JobContext
from service.jobs.runner import RunnerUnavailable
from service.jobs.sweep import JobSweeper
from service.registry.jobs import mark_enqueued
from service.settings import Settings
from worker.celery_app import TRAIN_TASK, create_celery
from worker.settings import CelerySettings

log = logging.getLogger(__name__)

BROKER_ERRORS = (KombuError, RedisError, OSError)  # kombu wraps most as OperationalError


class CeleryRunner:
    kind = "celery"

    def __init__(self, settings: Settings, context: JobContext) -> None:
        self.settings = CelerySettings.extend(settings)
        self.context = context
        self.app = create_celery(self.settings)
        self._sweeper = JobSweeper(
            context.database,
            self.submit,
            self.settings.expert.sweep_interval_seconds,
            self.settings.requeue_after_seconds,
        )
        self._broker_error: str | None = None

    def start(self) -> None:
        """Sweep once now (never raises: the API must come up with the broker down), then
        keep sweeping in the background."""
        self._sweeper.start()

    def submit(self, job_id: str) -> None:
        try:
            self.app.send_task(TRAIN_TASK, args=[job_id], queue=self.settings.training_queue)
        except BROKER_ERRORS as error:
            self._broker_error = f"{type(error).__name__}: {error}"
            raise RunnerUnavailable(f"the message broker is unreachable ({error})") from error
        self._broker_error = None
        with self.context.database.session() as session:
            mark_enqueued(session, job_id)

    def stop(self) -> None:
        self._sweeper.stop()
        self.app.close()

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "broker": self.app.connection_for_write().as_uri(),  # password masked
            "queue": self.settings.training_queue,
            "broker_error": self._broker_error,
            "sweep_interval_seconds": self.settings.expert.sweep_interval_seconds,
        }
