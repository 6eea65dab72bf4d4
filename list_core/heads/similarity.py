"""The prompt similarity head, for encoders without an MLM head: cosine similarity of the
mean-pooled text to label sentences ("It was great .") with a learnable temperature (why:
docs/design.md, "Encoders without an MLM head")."""

import math
from collections.abc import Sequence
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F

from list_core.adapters import adapter_plan
from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.heads.base import GroupProbabilities, TaskHead, mean_pool, score_rest_alone
from list_core.placeholders import placeholder
from list_core.prompts import PlainEncoder, TaskSpec, label_sentences


class SimilarityHead(TaskHead):
    """Scaled cosine similarity of the pooled text to one learnable embedding per label."""

    kind = "similarity"
    zero_shot = True  # label words / label sentences: a classifier before any training

    def __init__(self, label_embeddings: torch.Tensor, temperature: float = 0.05) -> None:
        super().__init__()
        self.label_embeddings = nn.Parameter(label_embeddings.detach().clone())
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @classmethod
    def build(
        cls, backbone: Backbone, spec: TaskSpec, max_length: int, generator: torch.Generator | None
    ) -> Self:
        """Label embeddings start as the bare backbone's embeddings of the label sentences."""
        return cls(_embed_plain(backbone, label_sentences(spec), max_length))

    @classmethod
    def stand_in(cls, backbone: Backbone, spec: TaskSpec, max_length: int) -> Self:
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.label_embeddings = placeholder(len(spec.labels), backbone.hidden_size)
        head.log_scale = placeholder()
        return head

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)
        labels = F.normalize(self.label_embeddings, dim=-1)
        return self.log_scale.exp() * pooled @ labels.T

    @torch.no_grad()
    def scale_logits(self, factor: float) -> None:
        self.log_scale.add_(math.log(factor))

    @classmethod
    def score_groups(
        cls,
        heads: Sequence["SimilarityHead"],
        row_groups: Sequence[list[int]],
        hidden: torch.Tensor,
        batch: TensorBatch,
        mask_index: list[int],
    ) -> list[GroupProbabilities]:
        """One batched call (`similarity_logits`) per label count shared by two or more
        heads; a head alone with its label count by its own forward."""
        by_labels: dict[int, list[int]] = {}
        for position, head in enumerate(heads):
            by_labels.setdefault(head.label_embeddings.shape[0], []).append(position)
        scored: list[GroupProbabilities | None] = [None] * len(heads)
        for similar in (positions for positions in by_labels.values() if len(positions) > 1):
            rows = [row for position in similar for row in row_groups[position]]
            owner = [
                number for number, position in enumerate(similar) for _ in row_groups[position]
            ]
            picks = torch.tensor(rows, device=hidden.device)
            logits = similarity_logits(
                [heads[position] for position in similar],
                torch.tensor(owner, device=hidden.device),
                hidden.index_select(0, picks),
                batch.attention_mask.index_select(0, picks),
            )
            probabilities = F.softmax(logits.float(), dim=-1).tolist()
            start = 0
            for position in similar:
                end = start + len(row_groups[position])
                scored[position] = probabilities[start:end]
                start = end
        return score_rest_alone(scored, heads, row_groups, hidden, batch)


def similarity_logits(
    heads: list[SimilarityHead],
    owner: torch.Tensor,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """`SimilarityHead` logits of many heads at once: row i scored by `heads[owner[i]]`. The
    heads must have the same number of labels. A dozen torch calls however many heads, where
    one call per head each cost a GIL hand-off in a busy server."""
    pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)
    labels = F.normalize(torch.stack([head.label_embeddings for head in heads]), dim=-1)
    scales = torch.stack([head.log_scale for head in heads]).exp()
    scores = torch.bmm(labels.index_select(0, owner), pooled.unsqueeze(-1)).squeeze(-1)
    return scales.index_select(0, owner).unsqueeze(-1) * scores


@torch.no_grad()
def _embed_plain(backbone: Backbone, sentences: list[str], max_length: int) -> torch.Tensor:
    """Mean-pooled embeddings through the bare backbone (no adapters)."""
    rows = PlainEncoder(backbone.tokenizer, max_length).encode(sentences, [None] * len(sentences))
    batch = collate(rows, backbone.tokenizer.pad_token_id, backbone.device)
    with adapter_plan(None):
        hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask)
    return mean_pool(hidden, batch.attention_mask)
