"""The service's settings plus the knobs only the Celery deployment has (the worker's group).

A subclass, not a second settings object: API processes and workers read the same
`LISTSERVE_*` environment, and an API process can hand its `Settings` to the Celery runner,
which fills in the Celery fields from the environment. docs/configuration.md lists them.
"""

from pydantic import Field, model_validator

from service.settings import Settings


class CelerySettings(Settings):
    broker_key_prefix: str = Field(
        "", description="prefix for every Redis key Celery uses (share one Redis safely)"
    )
    training_queue: str = Field("training", description="queue of the training jobs")
    quick_queue: str = Field("quick", description="default queue, for anything but training")
    job_time_limit_seconds: float = Field(
        6 * 3600.0, gt=0, description="longest allowed job: the soft limit fails it cleanly"
    )
    job_kill_grace_seconds: float = Field(
        120.0, gt=0, description="after the soft limit, how long until the hard kill"
    )
    visibility_timeout_seconds: float | None = Field(
        None, description="Redis redelivery timeout; default: hard limit + 1 h"
    )
    requeue_after_seconds: float = Field(
        900.0,
        gt=0,
        description="a job handed to the broker but still queued after this is sent again",
    )
    broker_timeout_seconds: float = Field(
        3.0, gt=0, description="connect/IO timeout, so a dead broker is a quick 503"
    )

    @property
    def hard_time_limit_seconds(self) -> float:
        return self.job_time_limit_seconds + self.job_kill_grace_seconds

    @property
    def visibility_timeout(self) -> float:
        if self.visibility_timeout_seconds is not None:
            return self.visibility_timeout_seconds
        return self.hard_time_limit_seconds + 3600.0

    @model_validator(mode="after")
    def _visibility_outlasts_jobs(self) -> "CelerySettings":
        """Redis re-delivers an unacked message after the visibility timeout; a shorter one
        would hand a still-running job to a second worker."""
        if self.visibility_timeout <= self.hard_time_limit_seconds:
            raise ValueError(
                f"visibility_timeout_seconds ({self.visibility_timeout:g}) must be longer than "
                f"the hard time limit ({self.hard_time_limit_seconds:g} = "
                "job_time_limit_seconds + job_kill_grace_seconds)"
            )
        return self

    @classmethod
    def extend(cls, settings: Settings) -> "CelerySettings":
        """These settings plus the Celery fields (from the environment, or defaults)."""
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump())
