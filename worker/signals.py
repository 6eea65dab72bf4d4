"""Worker-process wiring: JSON logs like the API's, and stopping training on warm shutdown."""

import logging

from celery import signals

from service.logs import configure_logging
from service.process.cpu_priority import lower_this_threads_priority
from worker.context import existing_context
from worker.settings import CelerySettings

log = logging.getLogger(__name__)


def connect() -> None:
    signals.setup_logging.connect(_setup_logging, weak=False)
    signals.worker_init.connect(_lower_priority, weak=False)
    signals.worker_shutting_down.connect(_shutting_down, weak=False)


def _lower_priority(**_) -> None:
    """Before the pool starts, so its children (or, solo, this thread) train at the API's model
    threads' priority: on a shared host, training must not take the CPU from serving."""
    lower_this_threads_priority(CelerySettings().expert.compute_nice)


def _setup_logging(**_) -> None:
    """Connecting this receiver also stops Celery from installing its own log format."""
    configure_logging(CelerySettings().log_level)


def _shutting_down(**_) -> None:
    """A warm shutdown (SIGTERM) in a process that is training (solo pool): stop at the next
    step and hand the job back (`execute_job` releases it, the task requeues the message).
    Prefork children finish their job instead; if they are killed, the lease sweep recovers it.
    """
    context = existing_context()
    if context is not None:
        log.info("warm shutdown: a running job stops and goes back to the queue")
        context.shutdown.set()
