"""The Celery application and its configuration for long training jobs.

The registry is the source of truth for jobs; Celery only carries "run job X" messages. So
results are not stored, a message is acknowledged only after the job function returns
(`task_acks_late`), a worker reserves one message at a time, and a message whose worker died is
put back (`task_reject_on_worker_lost`). Redis re-delivers an unacknowledged message only after
the visibility timeout, which must outlast the longest job; recovering a dead worker's job
faster is the registry lease sweep's business (see worker.runner), not the broker's.
"""

import functools

from celery import Celery
from kombu import Exchange, Queue

from worker.settings import CelerySettings

TRAIN_TASK = "listserve.train"


def celery_config(settings: CelerySettings) -> dict:
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": settings.broker_timeout_seconds,
        "socket_timeout": max(settings.broker_timeout_seconds, 10.0),
    }
    if settings.broker_key_prefix:
        transport["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        # No result backend is configured (job state lives in the registry); if an operator
        # adds one, its Redis timeout must match the broker's for the same reason.
        "result_backend_transport_options": dict(transport),
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,  # only fetch with a free slot: idle workers get jobs
        "task_soft_time_limit": settings.job_time_limit_seconds,
        "task_time_limit": settings.hard_time_limit_seconds,
        # A training job must not be dropped because the broker blipped: the registry and the
        # lease decide who owns it, and a late duplicate message is dropped by the claim.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        # Publishing from an API request: fail within seconds (-> 503), the sweep retries.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "task_queues": [_queue(settings.training_queue), _queue(settings.quick_queue)],
        "task_default_queue": settings.quick_queue,
        "task_routes": {TRAIN_TASK: {"queue": settings.training_queue}},
        "task_serializer": "json",
        "accept_content": ["json"],
        # For Flower and `celery events`.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
    }


def _queue(name: str) -> Queue:
    """Own exchange and routing key, so a training message can never land in another queue."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def create_celery(settings: CelerySettings, set_as_current: bool = False) -> Celery:
    """An app for `settings`; creating it opens no connection."""
    if not settings.broker_url:
        raise RuntimeError(
            "LISTSERVE_BROKER_URL is not set: Celery workers need a broker, e.g. "
            "redis://localhost:6379/0 (without one, `listserve serve` runs jobs in-process)"
        )
    app = Celery("listserve", set_as_current=set_as_current, include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


@functools.cache
def default_app() -> Celery:
    """The worker's app, configured from the environment (what `celery -A worker` loads)."""
    from worker import signals

    signals.connect()
    return create_celery(CelerySettings(), set_as_current=True)
