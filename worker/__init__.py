"""worker: Celery training jobs that run list_core's LiST loop and register adapters.

`celery -A worker worker` finds `worker.app`, built on first access from the `LISTSERVE_*`
environment, so importing the package (the API does, for `worker.runner`, through the
`listserve.runners` entry point) costs nothing.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

    app: Celery


def __getattr__(name: str):
    if name == "app":
        from worker.celery_app import default_app

        return default_app()
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
