"""BitFit's per-row computation: the module's output plus the task's bias change."""

import torch


def biased(out: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """`out + delta`, `delta` (fp32) cast to the encoder's dtype."""
    return out + delta.to(out.dtype)
