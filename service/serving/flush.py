"""What a flush is made of, and how its rows become forwards (`Batching`).

Production's `MixedBatching` lives here; the benchmark baselines, in service/serving/
baselines.py, implement the same protocol, so the batcher (service/serving/batcher.py) runs any
of them without knowing which.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from list_core.adapters import AdapterSet
from list_core.inference import Row
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel
from service.settings import Settings


@dataclass(frozen=True)
class FlushLimits:
    """When a flush closes and how much one forward may take; each is a setting."""

    max_batch_rows: int
    max_batch_tokens: int
    max_wait_ms: float
    max_wait_for_loads_ms: float
    max_queue_rows: int

    def __post_init__(self) -> None:
        for name in ("max_batch_rows", "max_batch_tokens", "max_queue_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "max_wait_for_loads_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "FlushLimits":
        expert = settings.expert
        return cls(
            max_batch_rows=expert.max_batch_rows,
            max_batch_tokens=expert.max_batch_tokens,
            max_wait_ms=expert.max_wait_ms,
            max_wait_for_loads_ms=expert.max_wait_for_loads_ms,
            max_queue_rows=settings.max_queue_rows,
        )


@dataclass(eq=False)
class QueuedRequest:
    """One submitted request: its rows, and the future its event loop awaits the answer on."""

    rows: list[Row]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float
    tokens: int

    def gone(self) -> bool:
        """The awaiting client cancelled (disconnected) or was already answered."""
        return self.future.done()


@dataclass(eq=False)
class FlushItem:
    """One row of a flush, with where its answer goes."""

    request: QueuedRequest
    position: int
    model: TaskModel
    encoded: EncodedRow


# Runs rows in length-sorted chunks; with an adapter set, every row runs through it instead of
# its own task's adapters.
ForwardChunks = Callable[[list[FlushItem], AdapterSet | None], None]


class Batching(Protocol):
    """How the rows of one flush become forwards."""

    name: str
    single_request_flushes: bool  # a flush takes one request and closes
    swaps: int  # adapter weights copied into a slot so far

    def forward(self, items: list[FlushItem], forward_chunks: ForwardChunks) -> None: ...


class MixedBatching:
    """Production: the rows of every task in a flush share its chunks, each row carrying its
    own adapter through the backbone (`MixedAdapterPlan`)."""

    name = "mixed"
    single_request_flushes = False
    swaps = 0

    def forward(self, items: list[FlushItem], forward_chunks: ForwardChunks) -> None:
        forward_chunks(items, None)


def estimate_tokens(row: Row) -> int:
    """Cheap pre-tokenisation guess used only to decide when a flush is full (~4 chars/token)."""
    chars = len(row.text) + len(row.text_b or "")
    return min(row.model.max_length, chars // 4 + 8)
