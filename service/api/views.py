"""Registry rows -> the JSON shapes of docs/design.md's Interfaces section."""

from service.jobs.timing import job_timing
from service.registry.models import AdapterVersion, Job, JobEvent, Task
from service.registry.states import ERROR_FAULTS, SERVICE_FAULT

PROGRESS_KEYS = ("session", "sessions", "phase", "step", "steps", "fraction")


def progress_view(job: Job) -> dict | None:
    if not job.progress:
        return None
    view = {key: job.progress.get(key) for key in PROGRESS_KEYS}
    return {**view, **job_timing(job.status, job.started_at, job.finished_at, job.progress)}


def job_error_view(job: Job) -> dict | None:
    """`{"type": "user_error" | "service_error", "code", "message"}`: whose fault, and why."""
    if job.error is None:
        return None
    code = job.error_code or "unknown"
    fault = ERROR_FAULTS.get(code, SERVICE_FAULT)
    return {"type": f"{fault}_error", "code": code, "message": job.error}


def trained_steps(job: Job) -> int | None:
    """Optimiser steps run: the final count once trained, else the latest progress's."""
    if job.metrics and job.metrics.get("steps") is not None:
        return job.metrics["steps"]
    return (job.progress or {}).get("trained_steps")


def job_summary(job: Job) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "progress": progress_view(job),
        "trained_steps": trained_steps(job),
        "error": job_error_view(job),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def job_view(job: Job) -> dict:
    metrics = job.metrics or {}
    result = None
    if metrics.get("version") is not None:
        result = {"version": metrics["version"], "promoted": metrics.get("promoted", True)}
    return {
        **job_summary(job),
        "task_id": job.task_id,
        "tenant_id": job.tenant_id,
        "promote": job.promote,
        "result": result,
        "sessions": list(metrics.get("history", [])),
        "metrics": job.metrics,
    }


def version_view(adapter: AdapterVersion, serving_version: int | None) -> dict:
    metrics = adapter.metrics or {}
    hyperparameters = metrics.get("hyperparameters") or {}
    return {
        "version": adapter.version,
        "serving": adapter.version == serving_version,
        "job_id": adapter.job_id,
        "method": metrics.get("method"),
        "tuner": metrics.get("tuner") or hyperparameters.get("tuner"),
        "created_at": adapter.created_at,
        "metrics": metrics,
    }


def adapter_view(adapter: AdapterVersion | None) -> dict | None:
    if adapter is None:
        return None
    return {
        "version": adapter.version,
        "created_at": adapter.created_at,
        "metrics": adapter.metrics,
    }


def task_view(task: Task, adapter: AdapterVersion | None, job: Job | None) -> dict:
    return {
        "id": task.id,
        "name": task.name,
        "status": task.status,
        "labels": list(task.labels),
        "method": task.method,
        "tuner": task.tuner,
        "head_kind": task.head_kind,
        "template": task.template,
        "label_words": dict(task.label_words),
        "created_at": task.created_at,
        "adapter": adapter_view(adapter),
        "job": job_summary(job) if job is not None else None,
    }


def event_view(event: JobEvent) -> dict:
    return {"id": event.id, "kind": event.kind, "data": event.data, "created_at": event.created_at}
