"""Side-tuning's per-row computation: `a h + (1 - a) s(x)`, where h is the frozen encoder's
output, s a small network over the row's input tokens and a = sigmoid(learned logit)."""

import torch
from torch import nn
from torch.nn import functional as F

from list_core.heads.base import mean_pool


def side_blend(
    network: nn.Module,
    logit: torch.Tensor,
    word_embeddings: torch.Tensor,
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """The blend for every token of each row: the side network reads the mean of the row's
    frozen word embeddings (its own tokens only) and its output joins every position."""
    words = F.embedding(input_ids, word_embeddings).float()
    side = network(mean_pool(words, attention_mask)).unsqueeze(1)
    weight = torch.sigmoid(logit)
    return weight * hidden + (1 - weight) * side
