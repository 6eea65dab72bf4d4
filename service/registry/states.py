"""Job and task status values, and which of them count as active or final."""

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_CANCEL_REQUESTED = "cancel_requested"
JOB_SUCCEEDED = "succeeded"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"

ACTIVE_JOB_STATUSES = (JOB_QUEUED, JOB_RUNNING, JOB_CANCEL_REQUESTED)
FINAL_JOB_STATUSES = (JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED)

TASK_TRAINING = "training"
TASK_READY = "ready"
TASK_FAILED = "failed"
TASK_CANCELLED = "cancelled"

JOB_CREATE = "create"
JOB_RETRAIN = "retrain"
PROMOTE_ALWAYS = "always"
PROMOTE_IF_BETTER = "if_better"

# Why a job failed, and whose fault that is: `user` (the task's data or settings cannot train;
# retrying the same input fails again) or `service` (ours: retry, or tell the operator).
USER_FAULT, SERVICE_FAULT = "user", "service"
ERROR_FAULTS = {
    "invalid_training_data": USER_FAULT,
    "training_error": SERVICE_FAULT,
    "store_error": SERVICE_FAULT,
    "registration_conflict": SERVICE_FAULT,
    "attempts_exhausted": SERVICE_FAULT,
}
