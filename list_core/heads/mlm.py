"""The MLM prompt head: the backbone's own MLM head (dense + LayerNorm copied per task)
restricted to the label words' decoder rows and scored at the prompt's mask token, as in
LiST's prompt-based fine-tuning."""

import copy
from collections.abc import Sequence
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedTokenizerBase

from list_core.backbone import Backbone, MlmHeadWeights
from list_core.batching import TensorBatch
from list_core.heads.base import GroupProbabilities, TaskHead, score_rest_alone, scripted
from list_core.placeholders import placeholder, placeholder_like
from list_core.prompts import PromptEncoder, TaskSpec, label_word_ids


class MlmPromptHead(TaskHead):
    """Label-word logits at the mask token, from a per-task copy of the backbone's MLM head."""

    kind = "mlm"
    zero_shot = True  # label words / label sentences: a classifier before any training
    reads_mask_only = True

    def __init__(self, pretrained: MlmHeadWeights, word_ids: list[int]) -> None:
        super().__init__()
        self.dense = copy.deepcopy(pretrained.dense)
        self.layer_norm = copy.deepcopy(pretrained.layer_norm)
        self.activation = pretrained.activation
        ids = torch.tensor(word_ids, device=pretrained.decoder_weight.device)
        self.word_weight = nn.Parameter(pretrained.decoder_weight.detach()[ids].clone())
        self.word_bias = nn.Parameter(pretrained.decoder_bias.detach()[ids].clone())
        self.requires_grad_(True)

    @classmethod
    def build(
        cls, backbone: Backbone, spec: TaskSpec, max_length: int, generator: torch.Generator | None
    ) -> Self:
        return cls(_pretrained(backbone), label_word_ids(backbone.tokenizer, spec))

    @classmethod
    def stand_in(cls, backbone: Backbone, spec: TaskSpec, max_length: int) -> Self:
        pretrained = _pretrained(backbone)
        word_count = len(label_word_ids(backbone.tokenizer, spec))
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.dense = placeholder_like(pretrained.dense)
        head.layer_norm = placeholder_like(pretrained.layer_norm)
        head.activation = pretrained.activation
        weight = pretrained.decoder_weight
        head.word_weight = placeholder(word_count, weight.shape[1], dtype=weight.dtype)
        head.word_bias = placeholder(word_count, dtype=pretrained.decoder_bias.dtype)
        return head

    @classmethod
    def input_encoder(
        cls, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> PromptEncoder:
        """Rows under the task's template, which puts the mask token the head reads."""
        return PromptEncoder(tokenizer, spec.template, max_length)

    @property
    def batchable(self) -> bool:
        """Whether `mlm_probabilities` computes exactly what this head's forward does."""
        return (
            exact_gelu(self.activation)
            and self.dense.bias is not None
            and self.layer_norm.weight is not None
            and self.layer_norm.bias is not None
        )

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        at_mask = hidden[rows, mask_index]
        features = self.layer_norm(self.activation(self.dense(at_mask)))
        return features @ self.word_weight.T + self.word_bias

    @torch.no_grad()
    def scale_logits(self, factor: float) -> None:
        self.word_weight.mul_(factor)
        self.word_bias.mul_(factor)

    @classmethod
    def score_groups(
        cls,
        heads: Sequence["MlmPromptHead"],
        row_groups: Sequence[list[int]],
        hidden: torch.Tensor,
        batch: TensorBatch,
        mask_index: list[int],
    ) -> list[GroupProbabilities]:
        """Every `batchable` head in one call (`mlm_probabilities`); the others by their own
        forward."""
        scored: list[GroupProbabilities | None] = [None] * len(heads)
        together = [position for position, head in enumerate(heads) if head.batchable]
        if together:
            probabilities = mlm_probabilities(
                [heads[i] for i in together], [row_groups[i] for i in together], hidden, mask_index
            )
            for position, task in zip(together, probabilities, strict=True):
                scored[position] = task.tolist()
        return score_rest_alone(scored, heads, row_groups, hidden, batch)


def _pretrained(backbone: Backbone) -> MlmHeadWeights:
    if backbone.mlm_head is None:
        raise ValueError(f"backbone {backbone.name!r} has no MLM head to build an mlm head from")
    return backbone.mlm_head


def exact_gelu(activation: nn.Module) -> bool:
    """Whether `activation` is the exact (erf) GELU, as RoBERTa's and BERT's MLM heads use:
    then `mlm_probabilities` computes what the head's own forward does."""
    if isinstance(activation, nn.GELU):
        return activation.approximate == "none"
    return getattr(activation, "act", None) is F.gelu


def _mlm_group_probabilities(
    hidden: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    group_rows: list[int],
    dense_weights: list[torch.Tensor],
    dense_biases: list[torch.Tensor],
    norm_weights: list[torch.Tensor],
    norm_biases: list[torch.Tensor],
    norm_eps: list[float],
    word_weights: list[torch.Tensor],
    word_biases: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Per head, the softmax of its label logits for its run of `rows` (consecutive in
    `rows`, `group_rows[i]` of them), read at `positions`; scripted by the caller."""
    at_mask = hidden[rows, positions]
    out: list[torch.Tensor] = []
    start = 0
    for i in range(len(group_rows)):
        features = F.gelu(
            F.linear(at_mask.narrow(0, start, group_rows[i]), dense_weights[i], dense_biases[i])
        )
        features = F.layer_norm(
            features, [features.size(-1)], norm_weights[i], norm_biases[i], norm_eps[i]
        )
        logits = F.linear(features, word_weights[i], word_biases[i])
        out.append(F.softmax(logits.float(), dim=-1))
        start += group_rows[i]
    return out


def mlm_probabilities(
    heads: list[MlmPromptHead],
    groups: list[list[int]],
    hidden: torch.Tensor,
    mask_index: list[int],
) -> list[torch.Tensor]:
    """Label probabilities of many MLM prompt heads at once: `groups[i]` lists the batch rows
    `heads[i]` scores, at their mask tokens (`mask_index`, one per batch row). Each head keeps
    its own weights; the loop over heads runs in TorchScript, so the whole scoring releases
    the GIL once, where each head's forward made about ten torch calls, each a GIL hand-off:
    beside a busy Python thread at a 1 ms switch interval, 32 heads one by one took 460 ms
    (9.9 alone), and 23 ms in one call (docs/notes/serving-findings.md, RoBERTa-base's
    width). The heads must use `exact_gelu`."""
    rows = [row for indices in groups for row in indices]
    device = hidden.device
    return scripted(_mlm_group_probabilities)(
        hidden,
        torch.tensor(rows, device=device),
        torch.tensor([mask_index[row] for row in rows], device=device),
        [len(indices) for indices in groups],
        [head.dense.weight for head in heads],
        [head.dense.bias for head in heads],
        [head.layer_norm.weight for head in heads],
        [head.layer_norm.bias for head in heads],
        [float(head.layer_norm.eps) for head in heads],
        [head.word_weight for head in heads],
        [head.word_bias for head in heads],
    )
