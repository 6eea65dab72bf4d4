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
