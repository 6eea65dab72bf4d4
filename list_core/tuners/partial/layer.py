"""Partial-k's per-row computation: a copied transformer layer run on its task's rows, in its
own dtype (fp32), whatever dtype the serving encoder's hidden states have."""

import torch
from torch import nn


class InOwnDtype:
    """Calls `layer` with floating tensors cast to its weights' dtype and casts back."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.dtype = next(layer.parameters()).dtype

    def __call__(self, hidden: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        cast = [_cast(value, self.dtype) for value in args]
        out = self.layer(hidden.to(self.dtype), *cast, **kwargs)
        return out.to(hidden.dtype)


def _cast(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value
