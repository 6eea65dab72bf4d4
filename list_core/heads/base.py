"""What every per-task head is: a module over the frozen encoder's hidden states that builds
itself for a task, says how its rows are encoded, and scores a batch's rows of its kind.

Inference never names a kind: it groups a batch's rows by head class and asks each class to
score its group (`TaskHead.score_groups`), so a new kind is one module under
`list_core/heads/` plus its line in `list_core.heads.registry.HEAD_TYPES`.
"""

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Self

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedTokenizerBase

from list_core.backbone import Backbone
from list_core.batching import TensorBatch
from list_core.prompts import PlainEncoder, PromptEncoder, TaskSpec

# Label probabilities of one head's rows: one list of floats per row.
GroupProbabilities = list[list[float]]


class TaskHead(nn.Module, ABC):
    """One task's head. Subclasses set `kind` (the name configs and the API report) and say
    whether they read the mask token alone (`reads_mask_only`)."""

    kind: ClassVar[str]
    # Whether the head reads only the hidden state at the prompt's mask token: when every
    # head of a batch does, the scripted forward computes its last layer at those tokens only.
    reads_mask_only: ClassVar[bool] = False
    # Whether the head as built is a zero-shot classifier (label words or sentences), the prior
    # `list_core.selection` keeps a task from falling below; a randomly started one is not.
    zero_shot: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def build(
        cls, backbone: Backbone, spec: TaskSpec, max_length: int, generator: torch.Generator | None
    ) -> Self:
        """A fresh head for the task, ready to train."""

    @classmethod
    @abstractmethod
    def stand_in(cls, backbone: Backbone, spec: TaskSpec, max_length: int) -> Self:
        """The head's structure with stand-ins for every tensor (`list_core.placeholders`),
        which a saved state replaces next: no allocation, no random init and no backbone
        forward, which a load would throw away (they were most of a cold load)."""

    @classmethod
    def input_encoder(
        cls, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> PromptEncoder | PlainEncoder:
        """How the head's rows become token ids: the texts as the tokenizer joins them; a head
        that reads a prompt's mask overrides this with the task's template."""
        return PlainEncoder(tokenizer, max_length)

    @abstractmethod
    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        """Label logits for each row of `hidden` ([rows, length, width])."""

    def scale_logits(self, factor: float) -> None:
        """Multiply every logit by `factor` > 0 from now on, in the head's own weights, so a
        temperature or blend weight (`list_core.calibration`) holds on every forward, batched
        and scripted alike, and is saved with the head. Only `selection: "cv"` needs it, so a
        registered kind may leave it out (`supports_scaling` says whether it did)."""
        raise NotImplementedError(f"head kind {self.kind!r} cannot scale its logits")

    @classmethod
    def supports_scaling(cls) -> bool:
        return cls.scale_logits is not TaskHead.scale_logits

    @classmethod
    def score_groups(
        cls,
        heads: Sequence["TaskHead"],
        row_groups: Sequence[list[int]],
        hidden: torch.Tensor,
        batch: TensorBatch,
        mask_index: list[int],
    ) -> list[GroupProbabilities]:
        """Label probabilities of a batch's heads of this kind: `heads[i]` scores the batch
        rows `row_groups[i]` of `hidden`, and `mask_index` gives each batch row's mask token.
        By default each head's own forward (`score_each_alone`); a kind that can score many
        heads in fewer torch calls (each a GIL hand-off in a busy server) overrides this."""
        return cls.score_each_alone(heads, row_groups, hidden, batch)

    @staticmethod
    def score_each_alone(
        heads: Sequence["TaskHead"],
        row_groups: Sequence[list[int]],
        hidden: torch.Tensor,
        batch: TensorBatch,
    ) -> list[GroupProbabilities]:
        """Each head's own forward over its rows, then a softmax: the way every head can be
        scored, and the fallback of the batched ways for heads they do not reproduce."""
        scored = []
        for head, indices in zip(heads, row_groups, strict=True):
            picks = torch.tensor(indices, device=hidden.device)
            logits = head(
                hidden.index_select(0, picks),
                batch.attention_mask.index_select(0, picks),
                batch.mask_index.index_select(0, picks),
            )
            scored.append(F.softmax(logits.float(), dim=-1).tolist())
        return scored


def score_rest_alone(
    scored: list[GroupProbabilities | None],
    heads: Sequence[TaskHead],
    row_groups: Sequence[list[int]],
    hidden: torch.Tensor,
    batch: TensorBatch,
) -> list[GroupProbabilities]:
    """`scored`, with each head a batched way left out (None) scored by its own forward."""
    rest = [position for position, probabilities in enumerate(scored) if probabilities is None]
    alone = TaskHead.score_each_alone(
        [heads[i] for i in rest], [row_groups[i] for i in rest], hidden, batch
    )
    for position, probabilities in zip(rest, alone, strict=True):
        scored[position] = probabilities
    return scored


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


@functools.cache
def scripted(function: Callable) -> torch.jit.ScriptFunction:
    """`function` scripted, on first use (not at import), once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
        return torch.jit.script(function)
