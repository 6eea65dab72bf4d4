"""Progress reports and cooperative cancellation for long training loops."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


class TrainingCancelled(Exception):
    """Raised inside the training loop when the caller's cancel check says stop."""


@dataclass
class Progress:
    """A snapshot of where training is; `fraction` covers the whole job, 0..1."""

    session: int
    sessions: int
    phase: str
    step: int
    steps: int
    fraction: float
    losses: dict[str, float] = field(default_factory=dict)
    agreement: float | None = None
    evaluation_accuracy: float | None = None
    # seconds since training started, and the estimate of what is left (list_core/eta.py)
    elapsed_seconds: float | None = None
    eta_seconds: float | None = None
    # optimiser steps done so far in the whole job (the job's `trained_steps`)
    trained_steps: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]
