"""Mixed-adapter inference: one backbone forward for rows of many tasks.

Rows are encoded (each as its own task's head and tuner ask; tasks that encode alike share one
tokenizer call), padded into one batch, and run through the shared backbone with a per-row
plan, whatever each row's tuner (`list_core.tuners`); tuners that change the last hidden states
(side, MLP) apply to their rows after it; then each head class scores the rows of its tasks
(`TaskHead.score_groups`). A task blended with its zero-shot prior adds a row per row, read
without its tuner (`list_core.blend`).
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from list_core.adapters import MixedAdapterPlan, adapter_plan
from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.blend import combine_prior_rows, with_prior_rows
from list_core.eager_fallback import EAGER_FALLBACKS
from list_core.heads.base import TaskHead
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel
from list_core.tuning import Tuner


@dataclass(frozen=True)
class Row:
    """One text to classify with one task's model."""

    model: TaskModel
    text: str
    text_b: str | None = None


def encode_rows(rows: Sequence[Row]) -> list[EncodedRow]:
    """Token ids for every row, with one tokenizer call per distinct encoding: tasks whose
    encoders encode alike (`batch_key`: same tokenizer, length limit and, for prompts,
    template) share a call. In a busy server each call waits to win the GIL back, so a batch
    over 30 tasks with one encoding must not make 30."""
    encoded: list[EncodedRow] = [EncodedRow([], -1)] * len(rows)
    for indices in _indices_by([row.model.encoder.batch_key for row in rows]).values():
        encoder = rows[indices[0]].model.encoder
        texts = [rows[i].text for i in indices]
        texts_b = [rows[i].text_b for i in indices]
        for index, encoded_row in zip(indices, encoder.encode(texts, texts_b), strict=True):
            encoded[index] = encoded_row
    return encoded


@torch.no_grad()
def forward_encoded(
    backbone: Backbone,
    models: Sequence[TaskModel],
    encoded: Sequence[EncodedRow],
    row_adapters: Sequence[Tuner] | None = None,
    apply_mode: str = "gather",
) -> list[list[float]]:
    """Label probabilities for row i = `encoded[i]` under `models[i]`, in ONE backbone forward.

    `row_adapters` defaults to each row's own adapters; a caller that batches differently (the
    swap baseline of the serving benchmark) passes its own.
    """
    if not encoded:
        return []
    adapters = [m.adapters for m in models] if row_adapters is None else list(row_adapters)
    models, encoded, adapters, prior_owners = with_prior_rows(models, encoded, adapters)
    batch = collate(encoded, backbone.tokenizer.pad_token_id, backbone.device)
    mask_index = [row.mask_index for row in encoded]
    hidden = _hidden_states(
        backbone, batch, adapters, apply_mode, _mask_positions(models, mask_index)
    )
    hidden = _transformed(backbone, hidden, batch, adapters)
    probabilities: list[list[float]] = [[] for _ in encoded]
    for head_type, groups in _groups_by_head_type(models).items():
        heads = [models[indices[0]].head for indices in groups]
        scored = head_type.score_groups(heads, groups, hidden, batch, mask_index)
        for indices, rows in zip(groups, scored, strict=True):
            for index, row in zip(indices, rows, strict=True):
                probabilities[index] = row
    return combine_prior_rows(probabilities, prior_owners) if prior_owners else probabilities


def _groups_by_head_type(models: Sequence[TaskModel]) -> dict[type[TaskHead], list[list[int]]]:
    """Each task's rows, grouped by the class of the task's head (in order of appearance)."""
    by_type: dict[type[TaskHead], list[list[int]]] = {}
    for indices in _rows_by_model(models).values():
        by_type.setdefault(type(models[indices[0]].head), []).append(indices)
    return by_type


def _mask_positions(models: Sequence[TaskModel], mask_index: list[int]) -> list[int] | None:
    """`mask_index` (each row's mask token) when every row's head reads that token alone
    (`TaskHead.reads_mask_only`); None when some head reads other tokens too."""
    if all(model.head.reads_mask_only for model in models) and min(mask_index) >= 0:
        return mask_index
    return None


def _transformed(
    backbone: Backbone, hidden: torch.Tensor, batch: TensorBatch, row_adapters: list[Tuner]
) -> torch.Tensor:
    """`hidden` with each tuner that changes the last hidden states (`side`, `mlp`) applied to
    its own rows."""
    changing = [tuner for tuner in row_adapters if tuner.transforms_hidden]
    if not changing:
        return hidden
    hidden = hidden.clone()
    for indices in _indices_by([id(tuner) for tuner in row_adapters]).values():
        tuner = row_adapters[indices[0]]
        if not tuner.transforms_hidden:
            continue
        rows = torch.tensor(indices, device=hidden.device)
        changed = tuner.transform_hidden(
            backbone,
            hidden.index_select(0, rows),
            batch.input_ids.index_select(0, rows),
            batch.attention_mask.index_select(0, rows),
        )
        hidden.index_copy_(0, rows, changed)
    return hidden


def _hidden_states(
    backbone: Backbone,
    batch: TensorBatch,
    row_adapters: list[Tuner],
    apply_mode: str,
    mask_positions: list[int] | None = None,
) -> torch.Tensor:
    """The backbone's scripted forward where it has one and the batch's adapters fit it (GIL
    released once); otherwise the eager forward with a per-row plan. With `mask_positions`
    the scripted forward computes the last layer at those tokens only (the rest of its result
    is zero); the eager forward computes every token."""
    scripted = backbone.scripted
    packed = (
        scripted.pack(row_adapters, batch.lengths, apply_mode) if scripted is not None else None
    )
    if scripted is not None and packed is not None:
        return scripted(
            batch.input_ids, batch.attention_mask, packed, batch.lengths, outputs=mask_positions
        )
    if scripted is not None:
        EAGER_FALLBACKS.add([tuner.config.name for tuner in row_adapters if not tuner.scriptable])
    with adapter_plan(MixedAdapterPlan(row_adapters, apply_mode)):
        return backbone.hidden_states(batch.input_ids, batch.encoder_mask)


def predict_mixed(
    backbone: Backbone, rows: Sequence[Row], apply_mode: str = "gather"
) -> list[list[float]]:
    """Per-row label probabilities, from ONE backbone forward over all rows."""
    models = [row.model for row in rows]
    return forward_encoded(backbone, models, encode_rows(rows), apply_mode=apply_mode)


def _rows_by_model(models: Sequence[TaskModel]) -> dict[Hashable, list[int]]:
    return _indices_by([id(model) for model in models])


def _indices_by(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """The positions of each distinct key, in order."""
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return groups
