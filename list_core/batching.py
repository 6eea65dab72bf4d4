"""Pad encoded rows into tensors for one backbone forward."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from list_core.prompts import EncodedRow


@dataclass
class TensorBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # the rows' own tokens: what heads read
    mask_index: torch.Tensor
    lengths: list[int]  # real tokens per row; reading them off a tensor costs a torch call
    # What the encoder attends to when rows carry virtual tokens (their own tokens and those
    # slots); None when no row has any, so it is `attention_mask`.
    backbone_mask: torch.Tensor | None = None

    @property
    def encoder_mask(self) -> torch.Tensor:
        return self.attention_mask if self.backbone_mask is None else self.backbone_mask

    @property
    def has_virtual_tokens(self) -> bool:
        return self.backbone_mask is not None


def collate(rows: Sequence[EncodedRow], pad_id: int, device: torch.device) -> TensorBatch:
    """Right-pad to the longest row; mask_index stays per row. Padded in Python and turned into
    tensors with three torch calls, not a few per row (each torch call is a GIL hand-off)."""
    width = max(len(row.input_ids) for row in rows)
    pads = [width - len(row.input_ids) for row in rows]
    ids = [list(row.input_ids) + [pad_id] * pad for row, pad in zip(rows, pads, strict=True)]
    real = [[1] * (width - pad) + [0] * pad for pad in pads]
    input_ids = torch.tensor(ids, dtype=torch.long)
    attention_mask = torch.tensor(real, dtype=torch.long)
    mask_index = torch.tensor([max(row.mask_index, 0) for row in rows], dtype=torch.long)
    lengths = [width - pad for pad in pads]
    backbone_mask = None
    if any(row.virtual_tokens for row in rows):
        backbone_mask = attention_mask.to(device)
        own = [
            [0] * row.virtual_tokens + ones[row.virtual_tokens :]
            for row, ones in zip(rows, real, strict=True)
        ]
        attention_mask = torch.tensor(own, dtype=torch.long)
    return TensorBatch(
        input_ids.to(device),
        attention_mask.to(device),
        mask_index.to(device),
        lengths,
        backbone_mask,
    )
