"""The service's answers as pydantic models. Unknown fields are kept (`extra="allow"`), so a
newer server's additions reach you instead of breaking the client."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Example(_Model):
    text: str
    label: str
    text_b: str | None = None


class JobError(_Model):
    type: str  # "user_error" (fix the data) or "service_error" (ours)
    code: str
    message: str


class JobSummary(_Model):
    id: str
    kind: str = "create"
    status: str
    attempts: int = 0
    progress: dict[str, Any] | None = None
    trained_steps: int | None = None
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class Job(JobSummary):
    task_id: str
    tenant_id: str
    promote: str | None = None
    result: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = []
    metrics: dict[str, Any] | None = None


class AdapterInfo(_Model):
    version: int
    created_at: datetime
    metrics: dict[str, Any]


class Task(_Model):
    id: str
    name: str
    status: str
    labels: list[str]
    method: str
    head_kind: str
    template: str
    label_words: dict[str, str]
    created_at: datetime
    adapter: AdapterInfo | None = None
    job: JobSummary | None = None


class JobEvent(_Model):
    id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


class Prediction(_Model):
    id: str  # give it to `feedback` with the right label
    label: str
    score: float
    scores: dict[str, float]


class PredictResult(_Model):
    task: str
    adapter_version: int
    predictions: list[Prediction]


class Version(_Model):
    version: int
    serving: bool
    job_id: str
    method: str | None = None
    tuner: str | None = None
    created_at: datetime
    metrics: dict[str, Any]


class Versions(_Model):
    serving_version: int | None
    data: list[Version]


class DataCounts(_Model):
    examples: int
    unlabeled: int
    evaluation: int
    feedback: int


class ExamplesAdded(_Model):
    task: str
    added: DataCounts
    totals: DataCounts


class Feedback(_Model):
    task: str
    example: Example
    replaced: bool
    prediction: dict[str, Any] | None = None
    totals: DataCounts


class Suggestion(_Model):
    text: str
    text_b: str | None = None
    label: str
    uncertainty: float
    scores: dict[str, float]


class Suggestions(_Model):
    task: str
    adapter_version: int
    pool: int
    data: list[Suggestion]


class TaskPage(_Model):
    data: list[Task]
    has_more: bool


class JobPage(_Model):
    data: list[Job]
    has_more: bool


class EventPage(_Model):
    data: list[JobEvent]
    has_more: bool


class Tenant(_Model):
    id: str
    name: str
    api_key: str  # shown once
