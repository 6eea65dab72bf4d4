"""Operations on a batch's packed real tokens ([tokens, width], no padding) that the scripted
forward's modules call: padding them back into rows, and adding each row's adapter.

TorchScript compiles these with the modules that call them, so they stay plain module-level
functions in its subset of Python.
"""

import torch
from torch.nn import functional as F


def pad_rows(packed: torch.Tensor, rows: int) -> torch.Tensor:
    """`packed` ([tokens, width]) followed by zero rows up to `rows` rows."""
    extra = rows - packed.size(0)
    return packed if extra <= 0 else F.pad(packed, [0, 0, 0, extra])


def pad_tokens(packed: torch.Tensor, index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """[tokens, width] -> [batch, length, width], zeros at the pads."""
    padded = packed.new_zeros([batch * length, packed.size(-1)])
    return padded.index_copy_(0, index, packed).view(batch, length, packed.size(-1))


def add_adapters(
    hidden: torch.Tensor,
    index: torch.Tensor,
    batch: int,
    length: int,
    down: list[torch.Tensor],
    up: list[torch.Tensor],
    segments: list[int],
    gelu: bool,
) -> torch.Tensor:
    """`hidden + f(hidden A_r) B_r` for row r's adapter, computed in the adapters' dtype: one
    matmul over the real tokens when the batch shares one adapter; one per adapter over its
    slice of tokens when `segments` gives the slices; else a bmm over the rows' weights,
    stacked here one site at a time so a batch never holds all its sites' copies. The first
    two add their result into the adapters'-dtype copy in place, which for an fp32 `hidden`
    is `hidden` itself."""
    x = hidden.to(down[0].dtype)
    if len(down) == 1:
        middle = torch.matmul(x, down[0])
        if gelu:
            middle = F.gelu(middle)
        x.addmm_(middle, up[0])
    elif len(segments) > 0:
        start = 0
        for i, count in enumerate(segments):
            rows = x.narrow(0, start, count)
            middle = torch.matmul(rows, down[i])
            if gelu:
                middle = F.gelu(middle)
            rows.addmm_(middle, up[i])
            start += count
    else:
        middle = torch.bmm(pad_tokens(x, index, batch, length), torch.stack(down))
        if gelu:
            middle = F.gelu(middle)
        delta = torch.bmm(middle, torch.stack(up))
        x = x + delta.reshape(batch * length, delta.size(-1)).index_select(0, index)
    return x.to(hidden.dtype)
