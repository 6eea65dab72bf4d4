"""What the API needs from a job runner, whatever executes the jobs."""

from typing import Protocol


class RunnerUnavailable(RuntimeError):
    """The runner cannot take jobs right now (e.g. the broker is down): the API answers 503 and
    the job stays `queued` in the registry for the re-enqueue sweep."""


class JobRunner(Protocol):
    """Runs persisted jobs. `submit` must not block on training; it only hands the id over."""

    kind: str

    def start(self) -> None:
        """Begin taking jobs; re-enqueue what a previous run left queued or half-done."""

    def submit(self, job_id: str) -> None:
        """Hand a `queued` job (already committed to the registry) to the executors."""

    def stop(self) -> None:
        """Stop taking jobs; interrupted ones go back to `queued`."""

    def describe(self) -> dict:
        """For /info: kind, and whatever helps an operator (threads, broker, queue)."""
