"""Registry rows -> the JSON shapes of docs/design.md's Interfaces section."""

from service.registry.models import AdapterVersion, Job, JobEvent, Task

PROGRESS_KEYS = ("session", "sessions", "phase", "step", "steps", "fraction")


def progress_view(job: Job) -> dict | None:
    if not job.progress:
        return None
    return {key: job.progress.get(key) for key in PROGRESS_KEYS}


def job_summary(job: Job) -> dict:
    return {
        "id": job.id,
        "status": job.status,
        "attempts": job.attempts,
        "progress": progress_view(job),
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def job_view(job: Job) -> dict:
    return {
        **job_summary(job),
        "task_id": job.task_id,
        "tenant_id": job.tenant_id,
        "metrics": job.metrics,
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
        "head_kind": task.head_kind,
        "template": task.template,
        "label_words": dict(task.label_words),
        "created_at": task.created_at,
        "adapter": adapter_view(adapter),
        "job": job_summary(job) if job is not None else None,
    }


def event_view(event: JobEvent) -> dict:
    return {"id": event.id, "kind": event.kind, "data": event.data, "created_at": event.created_at}
