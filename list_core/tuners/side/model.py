"""One task's side network (two Linear layers, the last zero at first) and its blend weight,
which starts near the frozen encoder (sigmoid(4) = 0.98). The side network reads the frozen
word embeddings, which are the backbone's and are not stored with the task."""

import torch
from torch import nn

from list_core.placeholders import placeholder, placeholder_linear
from list_core.sites import unwrapped
from list_core.tuners.side.config import SideConfig
from list_core.tuners.side.layer import side_blend
from list_core.tuning import Tuner

START_LOGIT = 4.0


class SideNetwork(Tuner):
    transforms_hidden = True

    def __init__(
        self,
        config: SideConfig,
        width: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        if not initialise:
            self.network = nn.Sequential(
                placeholder_linear(width, config.hidden),
                nn.GELU(),
                placeholder_linear(config.hidden, width),
            )
            self.logit = placeholder()
            return
        first = nn.Linear(width, config.hidden)
        bound = 1.0 / width**0.5
        with torch.no_grad():
            first.weight.uniform_(-bound, bound, generator=generator)
            first.bias.zero_()
        last = nn.Linear(config.hidden, width)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.network = nn.Sequential(first, nn.GELU(), last)
        self.logit = nn.Parameter(torch.tensor(START_LOGIT))

    def transform_hidden(self, backbone, hidden, input_ids, attention_mask) -> torch.Tensor:
        words = unwrapped(backbone.encoder.embeddings.word_embeddings).weight
        return side_blend(self.network, self.logit, words, hidden, input_ids, attention_mask)
