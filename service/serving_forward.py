"""Encode and forward already-collected rows: the model-thread half of `predict_mixed`.

`list_core.inference.predict_mixed` encodes and runs in one call. The batcher needs the two
apart: it encodes a whole flush at once (one tokenizer call per task), sorts rows by token
length, and only then cuts forward chunks, so it must see token lengths before any forward. The
forward here is the same computation as `predict_mixed` (collate, one backbone pass under an
adapter plan, each task's head on its own rows), so its numbers match it.
"""

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from list_core.adapters import MixedAdapterPlan, SingleAdapterPlan, adapter_plan
from list_core.backbone import Backbone
from list_core.batching import collate
from list_core.inference import Row
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel


def encode_rows(rows: Sequence[Row]) -> list[EncodedRow]:
    """Token ids for every row, with one tokenizer call per distinct task model."""
    encoded: list[EncodedRow | None] = [None] * len(rows)
    by_model: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_model.setdefault(id(row.model), []).append(index)
    for indices in by_model.values():
        model = rows[indices[0]].model
        texts = [rows[i].text for i in indices]
        texts_b = [rows[i].text_b for i in indices]
        for index, encoded_row in zip(indices, model.encode(texts, texts_b), strict=True):
            encoded[index] = encoded_row
    return encoded  # type: ignore[return-value]


@torch.no_grad()
def forward_encoded(
    backbone: Backbone,
    models: Sequence[TaskModel],
    encoded: Sequence[EncodedRow],
    plan: SingleAdapterPlan | MixedAdapterPlan | None = None,
    apply_mode: str = "gather",
) -> list[list[float]]:
    """Label probabilities for row i = `encoded[i]` under `models[i]`, in ONE backbone forward.

    `plan` defaults to each row's own adapters (`MixedAdapterPlan`); the swap baseline passes a
    `SingleAdapterPlan` over the one active adapter slot instead.
    """
    if not encoded:
        return []
    batch = collate(encoded, backbone.tokenizer.pad_token_id, backbone.device)
    if plan is None:
        plan = MixedAdapterPlan([model.adapters for model in models], apply_mode)
    with adapter_plan(plan):
        hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask)
    by_model: dict[int, list[int]] = {}
    for index, model in enumerate(models):
        by_model.setdefault(id(model), []).append(index)
    probabilities: list[list[float]] = [[] for _ in encoded]
    for indices in by_model.values():
        model = models[indices[0]]
        picks = torch.tensor(indices, device=hidden.device)
        logits = model.head(
            hidden.index_select(0, picks),
            batch.attention_mask.index_select(0, picks),
            batch.mask_index.index_select(0, picks),
        )
        for index, probs in zip(indices, F.softmax(logits.float(), dim=-1).tolist(), strict=True):
            probabilities[index] = probs
    return probabilities
