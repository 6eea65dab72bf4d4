"""Pad encoded rows into tensors for one backbone forward."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from list_core.prompts import EncodedRow


@dataclass
class TensorBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask_index: torch.Tensor


def collate(rows: Sequence[EncodedRow], pad_id: int, device: torch.device) -> TensorBatch:
    """Right-pad to the longest row; mask_index stays per row."""
    width = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row.input_ids)] = torch.tensor(row.input_ids)
        attention_mask[index, : len(row.input_ids)] = 1
    mask_index = torch.tensor([max(row.mask_index, 0) for row in rows], dtype=torch.long)
    return TensorBatch(input_ids.to(device), attention_mask.to(device), mask_index.to(device))
