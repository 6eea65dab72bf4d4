"""The Celery task: run one attempt of a training job through the shared job function.

Whether a message should run at all is the registry's call, made atomically by the claim inside
`execute_job`: a message for a finished job, or for one whose lease a live worker holds, comes
back `dropped` and is acknowledged, so a late or duplicate delivery is harmless.
"""

from celery import shared_task
from celery.exceptions import Reject

from service.jobs.execute import JobOutcome, execute_job
from worker.celery_app import TRAIN_TASK
from worker.context import worker_context


@shared_task(name=TRAIN_TASK, ignore_result=True)
def train(job_id: str) -> str:
    """Returns the outcome (Celery logs it); a job interrupted by this worker's shutdown goes
    back to the broker for another worker."""
    outcome = execute_job(job_id, worker_context())
    if outcome is JobOutcome.RELEASED:
        raise Reject("worker shutting down; the job goes back to the queue", requeue=True)
    return outcome.value
