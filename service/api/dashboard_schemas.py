"""Bodies of the operators' overview routes the dashboard reads: every tenant's tasks, one task
with its versions and jobs, serving health now and over time."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.api.lifecycle_schemas import VersionList
from service.api.schemas import Job, TaskOut, _examples

_TS = "2025-01-01T12:00:00Z"
_SAMPLE = {
    "at": 1735732800.0,
    "seconds": 5.0,
    "requests": 120,
    "rows": 960,
    "rows_per_s": 192.0,
    "forwards": 40,
    "mean_batch_rows": 24.0,
    "latency_ms_p50": 18.2,
    "latency_ms_p99": 61.0,
    "queued_rows": 0,
    "cache_bytes": 3276800,
    "cache_entries": 12,
    "cache_hit_rate": 0.98,
}


_TASK_COUNT = {
    "task_id": "tsk_9a1b...",
    "name": "reviews",
    "tenant_id": "tnt_5f0c...",
    "predictions": 960,
}
_WORKER = {
    "owner": "api-1234",
    "running_jobs": 1,
    "last_heartbeat_at": _TS,
    "lease_expires_at": _TS,
}


class AdminTask(TaskOut):
    model_config = _examples(
        {
            **TaskOut.model_config["json_schema_extra"]["examples"][0],
            "tenant_id": "tnt_5f0c...",
            "tenant_name": "acme",
        }
    )
    tenant_id: str
    tenant_name: str | None


class AdminTaskList(BaseModel):
    model_config = _examples({"data": [], "has_more": False})
    data: list[AdminTask]
    has_more: bool


class AdminTaskDetail(BaseModel):
    model_config = _examples(
        {
            "task": AdminTask.model_config["json_schema_extra"]["examples"][0],
            "versions": {"serving_version": 1, "data": []},
            "jobs": [],
        }
    )
    task: AdminTask
    versions: VersionList
    jobs: list[Job] = Field(description="The task's newest jobs, newest first.")


class ServingSample(BaseModel):
    model_config = _examples(_SAMPLE)
    at: float = Field(description="Unix time of the sample; it covers the `seconds` before.")
    seconds: float
    requests: int = Field(description="Predict requests answered by the batcher.")
    rows: int = Field(description="Rows (input x task) answered.")
    rows_per_s: float
    forwards: int = Field(description="Backbone forwards run.")
    mean_batch_rows: float | None = Field(description="Rows per forward (None: no forward).")
    latency_ms_p50: float | None = Field(
        description="Predict latency, estimated from the request histogram's buckets."
    )
    latency_ms_p99: float | None
    queued_rows: int = Field(description="Rows waiting for a model thread at `at`.")
    cache_bytes: int = Field(description="Bytes charged to the adapter cache at `at`.")
    cache_entries: int
    cache_hit_rate: float | None = Field(description="Hits over lookups (None: no lookup).")


class ServingHistoryOut(BaseModel):
    model_config = _examples({"interval_seconds": 5.0, "capacity": 720, "samples": [_SAMPLE]})
    interval_seconds: float
    capacity: int = Field(description="Samples kept at most; the oldest goes first.")
    samples: list[ServingSample] = Field(description="Oldest first.")


class TaskRequests(BaseModel):
    model_config = _examples(_TASK_COUNT)
    task_id: str = Field(description='A task id, or "other" for tasks past the counted ones.')
    name: str | None
    tenant_id: str | None
    predictions: int = Field(description="Texts classified for the task by this process.")


class WorkerOut(BaseModel):
    model_config = _examples(_WORKER)
    owner: str = Field(description="The lease owner: an API process's runner or a worker.")
    running_jobs: int
    last_heartbeat_at: datetime | None
    lease_expires_at: datetime | None


class ServingOverview(BaseModel):
    model_config = _examples(
        {
            "ready": True,
            "status": "backbone loaded and warm",
            "runner": {"kind": "in-process", "threads": 1, "pending_jobs": 0},
            "jobs": {"queued": 0, "running": 1, "cancel_requested": 0},
            "workers": [_WORKER],
            "tasks": [_TASK_COUNT],
            "batcher": {"mode": "mixed", "model_threads": 2, "queued_rows": 0},
            "adapter_cache": {"entries": 12, "bytes": 3276800, "budget_bytes": 536870912},
        }
    )
    ready: bool
    status: str
    runner: dict[str, Any] | None
    jobs: dict[str, int] = Field(description="Active jobs of every tenant, by status.")
    workers: list[WorkerOut] = Field(description="Who holds running jobs, by lease owner.")
    tasks: list[TaskRequests] = Field(description="Most classified first.")
    batcher: dict[str, Any] | None
    adapter_cache: dict[str, Any] | None
