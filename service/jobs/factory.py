"""Picks the job runner: in-process threads without a broker, Celery workers with one."""

from service.jobs.context import JobContext
from service.jobs.inprocess import InProcessRunner
from service.jobs.runner import JobRunner
from service.settings import Settings


def default_runner(settings: Settings, context: JobContext) -> JobRunner:
    if not settings.broker_url:
        return InProcessRunner(
            context,
            threads=settings.training_threads,
            sweep_interval_seconds=settings.sweep_interval_seconds,
            nice=settings.compute_nice,
        )
    try:
        from worker.runner import CeleryRunner
    except ImportError as error:
        raise RuntimeError(
            "LISTSERVE_BROKER_URL is set but the Celery runner (worker.runner.CeleryRunner) "
            "is not available; unset it to run jobs in-process"
        ) from error
    return CeleryRunner(settings, context)
