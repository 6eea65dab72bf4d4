"""Stand-in parameters for a model whose every tensor is loaded next with
`load_state_dict(assign=True)`.

A stand-in costs no torch call on the serving path: it shares one cached meta tensor per shape
and dtype, so building a loaded model's modules never releases and re-takes the GIL, which in a
busy server can cost a switch interval per call (`python -m benchmarks.micro.cold_load`, contended).
Stand-ins do not require grad, so the loaded parameters do not either.
"""

from functools import cache

import torch
from torch import nn


@cache
def _meta(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def placeholder(*shape: int, dtype: torch.dtype = torch.float32) -> nn.Parameter:
    """A parameter of this shape and dtype with no storage, to be replaced by a loaded one."""
    return nn.Parameter(_meta(tuple(shape), dtype), requires_grad=False)


def placeholder_like(module: nn.Module) -> nn.Module:
    """A copy of a leaf module (Linear, LayerNorm, ...) whose parameters are stand-ins of the
    same shapes and dtypes; its settings (eps, feature counts) are the original's."""
    if next(module.children(), None) is not None or next(module.buffers(), None) is not None:
        raise ValueError(f"{type(module).__name__}: only leaf modules without buffers")
    twin = type(module).__new__(type(module))
    twin.__dict__ = {
        **module.__dict__,
        "_parameters": {
            name: None if value is None else placeholder(*value.shape, dtype=value.dtype)
            for name, value in module._parameters.items()
        },
        "_buffers": {},
        "_modules": {},
    }
    return twin


@cache
def _meta_linear(in_features: int, out_features: int) -> nn.Linear:
    return nn.Linear(in_features, out_features, device="meta")


def placeholder_linear(in_features: int, out_features: int) -> nn.Module:
    """An `nn.Linear` (with bias) of stand-ins."""
    return placeholder_like(_meta_linear(in_features, out_features))
