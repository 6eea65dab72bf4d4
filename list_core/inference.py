"""Mixed-adapter inference: one backbone forward for rows of many tasks.

Rows are encoded (each under its own task's template; tasks that encode alike share one
tokenizer call), padded into one batch, and run through the shared backbone with a per-row
adapter plan; each task's head then scores its own rows.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from list_core.adapters import AdapterSet, MixedAdapterPlan, adapter_plan
from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.heads import classic_probabilities, mlm_probabilities, similarity_logits
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel


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
    row_adapters: Sequence[AdapterSet] | None = None,
    apply_mode: str = "gather",
) -> list[list[float]]:
    """Label probabilities for row i = `encoded[i]` under `models[i]`, in ONE backbone forward.

    `row_adapters` defaults to each row's own adapters; a caller that batches differently (the
    swap baseline of the serving benchmark) passes its own.
    """
    if not encoded:
        return []
    batch = collate(encoded, backbone.tokenizer.pad_token_id, backbone.device)
    adapters = [m.adapters for m in models] if row_adapters is None else list(row_adapters)
    mask_index = [row.mask_index for row in encoded]
    hidden = _hidden_states(
        backbone, batch, adapters, apply_mode, _mask_positions(models, mask_index)
    )
    probabilities: list[list[float]] = [[] for _ in encoded]
    groups = list(_rows_by_model(models).values())
    for indices, logits in _similarity_groups(models, groups, hidden, batch):
        _store(probabilities, indices, logits)
    scored_in_one_call = [
        *_mlm_groups(models, groups, hidden, mask_index),
        *_classic_groups(models, groups, hidden, batch),
    ]
    for indices, task_probabilities in scored_in_one_call:
        for index, row in zip(indices, task_probabilities.tolist(), strict=True):
            probabilities[index] = row
    for indices in groups:
        if not probabilities[indices[0]]:
            model = models[indices[0]]
            picks = torch.tensor(indices, device=hidden.device)
            logits = model.head(
                hidden.index_select(0, picks),
                batch.attention_mask.index_select(0, picks),
                batch.mask_index.index_select(0, picks),
            )
            _store(probabilities, indices, logits)
    return probabilities


def _similarity_groups(
    models: Sequence[TaskModel], groups: list[list[int]], hidden: torch.Tensor, batch: TensorBatch
) -> list[tuple[list[int], torch.Tensor]]:
    """Rows of tasks with similarity heads, one batched call per label count shared by two or
    more such tasks (the others are left to the per-task loop)."""
    by_labels: dict[int, list[list[int]]] = {}
    for indices in groups:
        model = models[indices[0]]
        if model.head.kind == "similarity":
            by_labels.setdefault(len(model.spec.labels), []).append(indices)
    scored = []
    for similar in (tasks for tasks in by_labels.values() if len(tasks) > 1):
        rows = [index for indices in similar for index in indices]
        owner = [position for position, indices in enumerate(similar) for _ in indices]
        picks = torch.tensor(rows, device=hidden.device)
        logits = similarity_logits(
            [models[indices[0]].head for indices in similar],
            torch.tensor(owner, device=hidden.device),
            hidden.index_select(0, picks),
            batch.attention_mask.index_select(0, picks),
        )
        scored.append((rows, logits))
    return scored


def _mlm_groups(
    models: Sequence[TaskModel],
    groups: list[list[int]],
    hidden: torch.Tensor,
    mask_index: list[int],
) -> list[tuple[list[int], torch.Tensor]]:
    """Rows and label probabilities of the tasks with MLM prompt heads, all scored in one call
    (`mlm_probabilities`, at each row's `mask_index`); heads it does not reproduce are left
    to the per-task loop."""
    scored = [
        indices
        for indices in groups
        if models[indices[0]].head.kind == "mlm" and models[indices[0]].head.batchable
    ]
    if not scored:
        return []
    heads = [models[indices[0]].head for indices in scored]
    return list(zip(scored, mlm_probabilities(heads, scored, hidden, mask_index), strict=True))


def _classic_groups(
    models: Sequence[TaskModel], groups: list[list[int]], hidden: torch.Tensor, batch: TensorBatch
) -> list[tuple[list[int], torch.Tensor]]:
    """Rows and label probabilities of the tasks with classic heads, all scored in one call
    (`classic_probabilities`)."""
    scored = [indices for indices in groups if models[indices[0]].head.kind == "classic"]
    if not scored:
        return []
    heads = [models[indices[0]].head for indices in scored]
    return list(
        zip(scored, classic_probabilities(heads, scored, hidden, batch.attention_mask), strict=True)
    )


def _store(probabilities: list[list[float]], indices: list[int], logits: torch.Tensor) -> None:
    for index, probs in zip(indices, F.softmax(logits.float(), dim=-1).tolist(), strict=True):
        probabilities[index] = probs


def _mask_positions(models: Sequence[TaskModel], mask_index: list[int]) -> list[int] | None:
    """`mask_index` (each row's mask token) when every row's head reads that token alone (MLM
    prompt heads); None when some head pools over all tokens."""
    if all(model.head.kind == "mlm" for model in models) and min(mask_index) >= 0:
        return mask_index
    return None


def _hidden_states(
    backbone: Backbone,
    batch: TensorBatch,
    row_adapters: list[AdapterSet],
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
    with adapter_plan(MixedAdapterPlan(row_adapters, apply_mode)):
        return backbone.hidden_states(batch.input_ids, batch.attention_mask)


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
