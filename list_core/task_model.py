"""A task's trainable part — adapters plus head — and how it runs on the shared backbone."""

from collections.abc import Sequence

import torch
from torch import nn

from list_core.adapters import AdapterConfig, AdapterSet, SingleAdapterPlan, adapter_plan
from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.heads import ClassicHead, MlmPromptHead, SimilarityHead, mean_pool
from list_core.prompts import (
    EncodedRow,
    PlainEncoder,
    PromptEncoder,
    TaskSpec,
    label_sentences,
    label_word_ids,
)

METHODS = ("list", "prompt", "classic")


class TaskModel(nn.Module):
    """Adapters + head for one task. Holds no backbone weights; many share one backbone."""

    def __init__(
        self,
        backbone: Backbone,
        spec: TaskSpec,
        method: str,
        adapter_config: AdapterConfig,
        max_length: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        """`initialise=False` builds the structure with stand-ins (`placeholders`): no
        allocation, no random init, no copy of the MLM head's pretrained pieces and no backbone
        forward for the similarity head's label embeddings. Loading a saved model replaces
        every tensor, so that work would be thrown away (it was most of a cold load)."""
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.spec = spec
        self.method = method
        self.adapter_config = adapter_config
        self.max_length = min(max_length, backbone.max_positions - 2)
        self.pad_id = backbone.tokenizer.pad_token_id
        self.hidden_dropout = 0.0
        self.adapters = AdapterSet(
            adapter_config, backbone.sites, backbone.hidden_size, generator, initialise
        )
        self.head = _build_head(backbone, spec, method, self.max_length, generator, initialise)
        self.encoder = (
            PromptEncoder(backbone.tokenizer, spec.template, self.max_length)
            if self.head.kind == "mlm"
            else PlainEncoder(backbone.tokenizer, self.max_length)
        )
        if initialise:  # otherwise every tensor is replaced by a loaded one on the device
            self.to(backbone.device)

    @property
    def head_kind(self) -> str:
        return self.head.kind

    def encode(self, texts: Sequence[str], texts_b: Sequence[str | None]) -> list[EncodedRow]:
        return self.encoder.encode(list(texts), list(texts_b))

    def forward(self, backbone: Backbone, batch: TensorBatch) -> torch.Tensor:
        """Same as `logits`; lets `torch.func.functional_call` substitute parameters."""
        return self.logits(backbone, batch)

    def logits(self, backbone: Backbone, batch: TensorBatch) -> torch.Tensor:
        """One forward of the shared backbone with this task's adapters, then its head.

        In training mode `hidden_dropout` (a training hyperparameter, not saved) applies."""
        dropout = self.hidden_dropout if self.training else 0.0
        with adapter_plan(SingleAdapterPlan(self.adapters, dropout)):
            hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask)
        return self.head(hidden, batch.attention_mask, batch.mask_index)

    def logits_for_rows(self, backbone: Backbone, rows: Sequence[EncodedRow]) -> torch.Tensor:
        return self.logits(backbone, collate(rows, self.pad_id, backbone.device))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def reset_adapters(self, backbone: Backbone, generator: torch.Generator | None) -> None:
        """Fresh adapters (a new LiST student); the head is re-made from the pretrained one."""
        self.adapters = AdapterSet(
            self.adapter_config, backbone.sites, backbone.hidden_size, generator
        ).to(backbone.device)
        self.head = _build_head(backbone, self.spec, self.method, self.max_length, generator).to(
            backbone.device
        )


def _build_head(
    backbone: Backbone,
    spec: TaskSpec,
    method: str,
    max_length: int,
    generator: torch.Generator | None,
    initialise: bool = True,
) -> nn.Module:
    if method == "classic":
        return ClassicHead(backbone.hidden_size, len(spec.labels), generator, initialise)
    if backbone.mlm_head is not None:
        word_ids = label_word_ids(backbone.tokenizer, spec)
        if not initialise:
            return MlmPromptHead.to_load(backbone.mlm_head, len(word_ids))
        return MlmPromptHead(backbone.mlm_head, word_ids)
    if not initialise:
        return SimilarityHead.to_load(len(spec.labels), backbone.hidden_size)
    return SimilarityHead(_embed_plain(backbone, label_sentences(spec), max_length))


@torch.no_grad()
def _embed_plain(backbone: Backbone, sentences: list[str], max_length: int) -> torch.Tensor:
    """Mean-pooled embeddings through the bare backbone (no adapters)."""
    rows = PlainEncoder(backbone.tokenizer, max_length).encode(sentences, [None] * len(sentences))
    batch = collate(rows, backbone.tokenizer.pad_token_id, backbone.device)
    with adapter_plan(None):
        hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask)
    return mean_pool(hidden, batch.attention_mask)
