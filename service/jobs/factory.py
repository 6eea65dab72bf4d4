"""Picks the job runner: in-process threads without a broker, Celery workers with one.

The Celery runner lives in `worker`, which builds on `service`; so service never imports it but
looks it up by name as the `celery` entry point of the `listserve.runners` group (declared in
pyproject.toml), keeping the dependency one way: worker -> service -> list_core.
"""

from importlib.metadata import entry_points

from service.jobs.context import JobContext
from service.jobs.inprocess import InProcessRunner
from service.jobs.runner import JobRunner
from service.settings import Settings

RUNNERS_GROUP = "listserve.runners"
BROKER_RUNNER = "celery"


def default_runner(settings: Settings, context: JobContext) -> JobRunner:
    if not settings.broker_url:
        return InProcessRunner(
            context,
            threads=settings.expert.training_threads,
            sweep_interval_seconds=settings.expert.sweep_interval_seconds,
            nice=settings.expert.compute_nice,
        )
    found = entry_points(group=RUNNERS_GROUP, name=BROKER_RUNNER)
    if not found:
        raise _runner_unavailable("no such entry point: is listserve installed?")
    try:
        runner_class = next(iter(found)).load()
    except ImportError as error:
        raise _runner_unavailable(f"{type(error).__name__}: {error}") from error
    return runner_class(settings, context)


def _runner_unavailable(reason: str) -> RuntimeError:
    return RuntimeError(
        "LISTSERVE_BROKER_URL is set but the Celery runner (worker.runner.CeleryRunner, entry "
        f"point {BROKER_RUNNER!r} of {RUNNERS_GROUP!r}) is not available ({reason}); unset it "
        "to run jobs in-process"
    )
