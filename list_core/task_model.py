"""A task's trainable part — tuner plus head — and how it runs on the shared backbone."""

from collections.abc import Sequence

import torch
from torch import nn

from list_core.adapters import SingleAdapterPlan, adapter_plan
from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.heads.base import TaskHead
from list_core.heads.registry import HEAD_TYPES, head_type_for
from list_core.prompts import EncodedRow, TaskSpec
from list_core.tuning import Tuner, TunerConfig
from list_core.virtual_tokens import VirtualTokenEncoder

METHODS = ("list", "prompt", "classic", "contrastive")


class TaskModel(nn.Module):
    """Tuner + head for one task. Holds no backbone weights (a `partial` tuner holds its own
    copies of some); many share one backbone."""

    def __init__(
        self,
        backbone: Backbone,
        spec: TaskSpec,
        method: str,
        adapter_config: TunerConfig,
        max_length: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
        head_kind: str | None = None,
        prior_head_kind: str | None = None,
    ) -> None:
        """`adapter_config` is the tuner's config (`list_core.tuners`; an `AdapterConfig` for
        the LiST adapter). `initialise=False` builds the structure with stand-ins
        (`placeholders`): no allocation, no random init, no copy of the MLM head's pretrained
        pieces and no backbone forward for the similarity head's label embeddings. Loading a
        saved model replaces every tensor, so that work would be thrown away (it was most of a
        cold load). The head's class is `head_kind`'s, by default the one the registry gives
        the method (`head_type_for`). `prior_head_kind` (a blend with the zero-shot prior,
        `list_core.blend`) adds that kind's head as initialised, read without the tuner."""
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.spec = spec
        self.method = method
        self.adapter_config = adapter_config
        self.max_length = min(max_length, backbone.max_positions - 2)
        self.pad_id = backbone.tokenizer.pad_token_id
        self.hidden_dropout = 0.0
        self.adapters: Tuner = adapter_config.build(backbone, generator, initialise)
        head = HEAD_TYPES[head_kind] if head_kind else head_type_for(method, backbone)
        self.head = (
            head.build(backbone, spec, self.max_length, generator)
            if initialise
            else head.stand_in(backbone, spec, self.max_length)
        )
        # What `list_core.selection` chose and fit (recorded in config.json; its temperature
        # and blend weight are folded into the heads' weights).
        self.calibration: dict | None = None
        self.prior_head: TaskHead | None = None
        if prior_head_kind:
            prior = HEAD_TYPES[prior_head_kind]
            self.prior_head = (
                prior.build(backbone, spec, self.max_length, generator)
                if initialise
                else prior.stand_in(backbone, spec, self.max_length)
            )
        virtual = self.adapters.virtual_tokens
        encoder = head.input_encoder(backbone.tokenizer, spec, self.max_length - virtual)
        self.encoder = (
            VirtualTokenEncoder(encoder, virtual, backbone.tokenizer) if virtual else encoder
        )
        if initialise:  # otherwise every tensor is replaced by a loaded one on the device
            self.to(backbone.device)

    @property
    def tuner(self) -> str:
        """The tuner's name (`adapter`, `lora`, ...), as configs and the API report it."""
        return self.adapter_config.name

    @property
    def head_kind(self) -> str:
        return self.head.kind

    def encode(self, texts: Sequence[str], texts_b: Sequence[str | None]) -> list[EncodedRow]:
        return self.encoder.encode(list(texts), list(texts_b))

    def forward(self, backbone: Backbone, batch: TensorBatch) -> torch.Tensor:
        """Same as `logits`; lets `torch.func.functional_call` substitute parameters."""
        return self.logits(backbone, batch)

    def logits(self, backbone: Backbone, batch: TensorBatch) -> torch.Tensor:
        """One forward of the shared backbone with this task's tuner, then its head (plus the
        prior head's logits over the frozen encoder alone, for a blend).

        In training mode `hidden_dropout` (a training hyperparameter, not saved) applies."""
        logits = self.head(
            self.hidden_states(backbone, batch), batch.attention_mask, batch.mask_index
        )
        if self.prior_head is not None:
            with adapter_plan(None):
                bare = backbone.hidden_states(batch.input_ids, batch.encoder_mask)
            logits = logits + self.prior_head(bare, batch.attention_mask, batch.mask_index)
        return logits

    def hidden_states(self, backbone: Backbone, batch: TensorBatch) -> torch.Tensor:
        """The last hidden states the head reads: the backbone with this task's tuner, and the
        tuner's change after it (`side`, `mlp`)."""
        dropout = self.hidden_dropout if self.training else 0.0
        with adapter_plan(SingleAdapterPlan(self.adapters, dropout)):
            hidden = backbone.hidden_states(batch.input_ids, batch.encoder_mask)
        if self.adapters.transforms_hidden:
            hidden = self.adapters.transform_hidden(
                backbone, hidden, batch.input_ids, batch.attention_mask
            )
        return hidden

    def logits_for_rows(self, backbone: Backbone, rows: Sequence[EncodedRow]) -> torch.Tensor:
        return self.logits(backbone, collate(rows, self.pad_id, backbone.device))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
