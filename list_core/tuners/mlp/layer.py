"""MLP-k's per-row computation, as a change to the hidden states that pooling turns into an
MLP over the pooled text.

Mean pooling is linear, so adding `f(p)` (p = the row's pooled text) to every token of the
row makes any pooling head see `p + f(p)`: a residual MLP over the pooled text, computed on the
hidden states every head takes.
"""

import torch
from torch import nn

from list_core.heads.base import mean_pool
from list_core.placeholders import placeholder_linear


def residual_mlp(
    depth: int, width: int, generator: torch.Generator | None, initialise: bool
) -> nn.Sequential:
    """`depth` Linear layers with GELUs between; the last starts at zero (an identity MLP).
    `initialise=False` builds stand-ins (`placeholders`) for weights loaded next."""
    layers: list[nn.Module] = []
    for index in range(depth):
        if index:
            layers.append(nn.GELU())
        layers.append(_linear(width, generator, zero=index == depth - 1, initialise=initialise))
    return nn.Sequential(*layers)


def _linear(
    width: int, generator: torch.Generator | None, zero: bool, initialise: bool
) -> nn.Module:
    if not initialise:
        return placeholder_linear(width, width)
    linear = nn.Linear(width, width, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        bound = 0.0 if zero else 1.0 / width**0.5
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.zero_()
    return linear


def pooled_change(
    mlp: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """`hidden` with `mlp(pooled text)` added to each of the row's tokens."""
    return hidden + mlp(mean_pool(hidden, attention_mask)).unsqueeze(1)
