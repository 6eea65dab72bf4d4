"""Why a prediction was not served, as types: the predict route turns each into its HTTP answer
(service/api/routes/predict.py), so the serving package needs no web framework."""


class ServingError(Exception):
    """A prediction refused or cut short for a reason the client is told."""


class TaskNotFoundError(ServingError):
    """No such task for this tenant (or another tenant's: the answer must not say which)."""


class TaskNotReadyError(ServingError):
    """The task exists but has no trained adapter yet; `eta_seconds` is its training job's
    estimate of what it has left (None when there is none)."""

    def __init__(self, status: str, eta_seconds: float | None = None) -> None:
        left = f", about {eta_seconds:.0f} s of training left" if eta_seconds is not None else ""
        super().__init__(f"task has no trained adapter yet (status {status}{left})")
        self.status = status
        self.eta_seconds = eta_seconds


class AdapterLoadFailedError(ServingError):
    """The registered adapter's files are missing, corrupt, or not for this backbone."""

    def __init__(self, version: int) -> None:
        super().__init__(f"adapter version {version} could not be loaded")
        self.version = version


class VersionNotFoundError(ServingError):
    """The request pinned a version the task does not have (answer 404)."""

    def __init__(self, task_id: str, version: int) -> None:
        super().__init__(f"task {task_id} has no version {version}")
        self.version = version


class QueueFullError(ServingError):
    """The queue cannot take this request now; answer 429 with `Retry-After: retry_after_s`."""

    def __init__(self, retry_after_s: float, queued_rows: int = 0, max_queue_rows: int = 0) -> None:
        super().__init__(
            f"prediction queue is full ({queued_rows} of {max_queue_rows} rows waiting); "
            f"retry after {retry_after_s:.2f}s"
        )
        self.retry_after_s = retry_after_s
        self.queued_rows = queued_rows
        self.max_queue_rows = max_queue_rows


class RequestTooLargeError(ServingError):
    """More rows in one request than the queue can ever hold (answer 413)."""


class BatcherStoppedError(ServingError):
    """The batcher is not running (not started, or shutting down); answer 503."""
