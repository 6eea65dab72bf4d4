"""The classic head: a linear layer over the mean-pooled text, the standard fine-tuning
baseline."""

from collections.abc import Sequence
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F

from list_core.backbone import Backbone
from list_core.batching import TensorBatch
from list_core.heads.base import GroupProbabilities, TaskHead, mean_pool, scripted
from list_core.placeholders import placeholder_linear
from list_core.prompts import TaskSpec


class ClassicHead(TaskHead):
    """Label logits from a Linear layer over the mean-pooled text."""

    kind = "classic"

    def __init__(
        self, hidden_size: int, num_labels: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, num_labels)
        nn.init.normal_(self.linear.weight, 0.0, 0.02, generator=generator)
        nn.init.zeros_(self.linear.bias)

    @classmethod
    def build(
        cls, backbone: Backbone, spec: TaskSpec, max_length: int, generator: torch.Generator | None
    ) -> Self:
        return cls(backbone.hidden_size, len(spec.labels), generator)

    @classmethod
    def stand_in(cls, backbone: Backbone, spec: TaskSpec, max_length: int) -> Self:
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.linear = placeholder_linear(backbone.hidden_size, len(spec.labels))
        return head

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        return self.linear(mean_pool(hidden, attention_mask))

    @torch.no_grad()
    def scale_logits(self, factor: float) -> None:
        self.linear.weight.mul_(factor)
        self.linear.bias.mul_(factor)

    @classmethod
    def score_groups(
        cls,
        heads: Sequence["ClassicHead"],
        row_groups: Sequence[list[int]],
        hidden: torch.Tensor,
        batch: TensorBatch,
        mask_index: list[int],
    ) -> list[GroupProbabilities]:
        """Every head in one call (`classic_probabilities`)."""
        probabilities = classic_probabilities(
            list(heads), list(row_groups), hidden, batch.attention_mask
        )
        return [task.tolist() for task in probabilities]


def _classic_group_probabilities(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    group_rows: list[int],
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Per head, the softmax of its Linear over the mean-pooled text of its run of `rows`
    (consecutive in `rows`, `group_rows[i]` of them); scripted by the caller."""
    pooled = mean_pool(hidden.index_select(0, rows), attention_mask.index_select(0, rows))
    out: list[torch.Tensor] = []
    start = 0
    for i in range(len(group_rows)):
        logits = F.linear(pooled.narrow(0, start, group_rows[i]), weights[i], biases[i])
        out.append(F.softmax(logits.float(), dim=-1))
        start += group_rows[i]
    return out


def classic_probabilities(
    heads: list[ClassicHead],
    groups: list[list[int]],
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> list[torch.Tensor]:
    """Label probabilities of many classic heads at once (`groups[i]` lists the batch rows
    `heads[i]` scores), in one TorchScript call for the same reason as `mlm_probabilities`
    (`list_core.heads.mlm`): each head's own forward and softmax were a handful of GIL
    hand-offs per task."""
    rows = [row for indices in groups for row in indices]
    return scripted(_classic_group_probabilities)(
        hidden,
        attention_mask,
        torch.tensor(rows, device=hidden.device),
        [len(indices) for indices in groups],
        [head.linear.weight for head in heads],
        [head.linear.bias for head in heads],
    )
