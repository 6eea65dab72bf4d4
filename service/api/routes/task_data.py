"""More data and a new version: add examples, feed back corrected labels, retrain.

New texts are checked by the same code as `POST /tasks` (`validation.check_task_data`), with
the task's stored texts counted against the limits, inside the transaction that stores them
(the task's row is locked), so two concurrent additions cannot pass a limit together. A
retrain is a job like the first training; the version the task serves keeps serving until the
new one is registered and, by the `promote` policy, promoted.
"""

import logging
import time

from fastapi import APIRouter

from list_core.field_error import FieldError
from service.api.deps import ServicesDep, TenantId
from service.api.errors import ApiError, not_found
from service.api.lifecycle_schemas import (
    ExamplesAdd,
    ExamplesAdded,
    FeedbackIn,
    FeedbackOut,
    RetrainRequest,
)
from service.api.routes.common import TaskId, errors, quota_error, submit_job
from service.api.schemas import Job
from service.api.validation import (
    StoredData,
    check_feedback,
    check_task_data,
    check_training_steps,
    record,
    task_spec,
)
from service.api.views import job_view
from service.registry import task_data as data_registry
from service.registry import tasks as task_registry
from service.registry.models import Task, TaskData
from service.serving import prediction_ids

log = logging.getLogger(__name__)
router = APIRouter(tags=["tasks"])
RETRAIN_DEFAULTS = RetrainRequest()  # an empty body retrains with the default policy


def _stored(data: TaskData) -> StoredData:
    return StoredData(
        examples=len(data.examples),
        unlabeled=len(data.unlabeled),
        evaluation=len(data.evaluation),
        labels=frozenset(example["label"] for example in data.examples),
    )


def _counts(counts: data_registry.DataCounts) -> dict:
    return {
        "examples": counts.examples,
        "unlabeled": counts.unlabeled,
        "evaluation": counts.evaluation,
        "feedback": counts.feedback,
    }


def _locked(session, tenant_id: str, task_id: str) -> tuple[Task, TaskData]:
    task = task_registry.lock_task(session, tenant_id, task_id)
    data = task_registry.get_task_data(session, task_id) if task is not None else None
    if task is None or data is None:
        raise not_found()
    return task, data


@router.post(
    "/tasks/{task_id}/examples",
    status_code=201,
    response_model=ExamplesAdded,
    summary="Add labelled examples, unlabelled and evaluation texts for the next retrain",
    responses=errors(401, 404, 413, 422),
)
def add_examples(
    task_id: TaskId, body: ExamplesAdd, tenant_id: TenantId, services: ServicesDep
) -> dict:
    if not (body.examples or body.unlabeled or body.evaluation):
        raise FieldError("examples", "give at least one example, unlabeled or evaluation text")
    with services.database.session() as session:
        task, data = _locked(session, tenant_id, task_id)
        spec = task_spec(task.labels, task.template, task.label_words)
        check_task_data(
            spec, body.examples, body.unlabeled, body.evaluation, services.settings, _stored(data)
        )
        totals = data_registry.append_data(
            session,
            data,
            [record(example) for example in body.examples],
            list(body.unlabeled),
            [record(example) for example in body.evaluation],
        )
    added = data_registry.DataCounts(
        len(body.examples), len(body.unlabeled), len(body.evaluation), 0
    )
    return {"task": task_id, "added": _counts(added), "totals": _counts(totals)}


@router.post(
    "/tasks/{task_id}/retrain",
    status_code=202,
    response_model=Job,
    summary="Train a new version from all the task's data; the served one serves meanwhile",
    responses=errors(401, 404, 409, 413, 422, 429, 503),
)
def retrain(
    task_id: TaskId,
    tenant_id: TenantId,
    services: ServicesDep,
    body: RetrainRequest = RETRAIN_DEFAULTS,
) -> dict:
    backbone = services.require_ready()
    settings = services.settings
    policy = body.promote
    quotas = task_registry.Quotas(
        settings.max_tasks_per_tenant, settings.max_active_jobs_per_tenant
    )
    try:
        with services.database.session() as session:
            task, data = _locked(session, tenant_id, task_id)
            check_training_steps(
                task.method,
                dict(task.hyperparameters),
                len(data.examples),
                len(data.unlabeled),
                settings,
                backbone,
                task.tuner,
            )
            job = task_registry.create_retrain(session, task, quotas, settings.max_attempts, policy)
    except task_registry.QuotaExceeded as error:
        raise quota_error(error) from error
    except task_registry.TaskBusy as error:
        raise ApiError(409, "conflict", str(error), {"job_id": error.job_id}) from error
    log.info("retrain queued", extra={"task_id": task_id, "job_id": job.id})
    submit_job(services, task_id, job.id)
    return job_view(job)


@router.post(
    "/tasks/{task_id}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    summary="Store a corrected label (for a prediction id, or a text) for the next retrain",
    responses=errors(401, 404, 413, 422),
)
def feedback(task_id: TaskId, body: FeedbackIn, tenant_id: TenantId, services: ServicesDep) -> dict:
    if (body.prediction_id is None) == (body.text is None):
        raise FieldError("prediction_id", 'send either "prediction_id" or "text", not both')
    if body.prediction_id is not None and body.text_b is not None:
        raise FieldError("text_b", 'only with "text"; a prediction id carries its own')
    settings = services.settings
    with services.database.session() as session:
        task, data = _locked(session, tenant_id, task_id)
        text, text_b, prediction = body.text, body.text_b, None
        if body.prediction_id is not None:
            text, text_b, prediction = _read_prediction(task, body.prediction_id, settings)
        spec = task_spec(task.labels, task.template, task.label_words)
        replaces = data_registry.find_labelled(data, text, text_b) is not None
        check_feedback(spec, text, text_b, body.label, settings, _stored(data), replaces)
        example = {"text": text, "label": body.label}
        if text_b is not None:
            example["text_b"] = text_b
        replaced = data_registry.upsert_feedback(session, data, example)
        totals = data_registry.counts(data)
    return {
        "task": task_id,
        "example": example,
        "replaced": replaced,
        "prediction": prediction,
        "totals": _counts(totals),
    }


def _read_prediction(task: Task, prediction_id: str, settings) -> tuple[str, str | None, dict]:
    try:
        found = prediction_ids.read(
            task.prediction_key,
            task.id,
            prediction_id,
            settings.prediction_id_ttl_seconds,
            time.time(),
        )
    except prediction_ids.InvalidPredictionId as error:
        raise FieldError("prediction_id", str(error)) from error
    labels = list(task.labels)
    label = labels[found.label_index] if found.label_index < len(labels) else None
    return found.text, found.text_b, {"version": found.version, "label": label}
