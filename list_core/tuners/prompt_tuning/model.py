"""One task's soft prompt, [length, width], put in place of its rows' virtual tokens' word
embeddings (position and type embeddings and the embedding LayerNorm still apply, as in PEFT).
It starts as the embeddings of random ordinary words (Lester et al.'s vocabulary init)."""

import torch
from torch import nn

from list_core.placeholders import placeholder
from list_core.sites import EMBEDDINGS_KEY, unwrapped
from list_core.tuners.prompt_tuning.layer import with_front
from list_core.tuning import Tuner, TunerConfig
from list_core.virtual_tokens import sample_token_ids


def vocabulary_start(backbone, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """Word embeddings of `length` random ordinary tokens (fp32)."""
    weight = unwrapped(backbone.encoder.embeddings.word_embeddings).weight
    ids = torch.tensor(
        sample_token_ids(backbone.tokenizer, length, generator), device=weight.device
    )
    return weight.detach().index_select(0, ids).float().clone()


class SoftPrompt(Tuner):
    def __init__(
        self,
        length: int,
        backbone,
        generator: torch.Generator | None,
        initialise: bool,
        config: TunerConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.virtual_tokens = length
        self.site_keys = [EMBEDDINGS_KEY]
        self.prompt = (
            nn.Parameter(vocabulary_start(backbone, length, generator))
            if initialise
            else placeholder(length, backbone.hidden_size)
        )

    def prompts(self) -> torch.Tensor:
        return self.prompt

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return with_front(out, self.prompts())
