"""P-tuning's prompt encoder: `e + MLP(e)` over learned input embeddings (PEFT's MLP encoder
shape, with a residual and a zero last layer so training starts at the vocabulary init)."""

import torch
from torch import nn


class PromptEncoder(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, width),
        )
        nn.init.zeros_(self.mlp[4].weight)
        nn.init.zeros_(self.mlp[4].bias)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding + self.mlp(embedding)
