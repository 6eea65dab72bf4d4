"""The per-row computation of prompts and prefixes: a row's first `count` positions (its
virtual tokens) replaced by the tuner's own vectors."""

import torch


def with_front(out: torch.Tensor, front: torch.Tensor) -> torch.Tensor:
    """`out` ([rows, length, width]) with each row's first `len(front)` positions replaced by
    `front` ([count, width]), kept differentiable in `front`."""
    count = front.size(0)
    rows = out.size(0)
    return torch.cat([front.to(out.dtype).expand(rows, -1, -1), out[:, count:]], dim=1)
