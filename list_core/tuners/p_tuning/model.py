"""One task's P-tuning prompt: while training, a prompt encoder's output over learned input
embeddings; once trained (`finalise`) that output alone, served exactly as a soft prompt."""

import torch
from torch import nn

from list_core.tuners.p_tuning.config import PTuningConfig
from list_core.tuners.p_tuning.layer import PromptEncoder
from list_core.tuners.prompt_tuning.model import SoftPrompt, vocabulary_start


class PTuningPrompt(SoftPrompt):
    def __init__(
        self,
        config: PTuningConfig,
        backbone,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        super().__init__(config.length, backbone, generator, initialise=False, config=config)
        self.embedding: nn.Parameter | None = None
        self.prompt_encoder: PromptEncoder | None = None
        if initialise:
            self.prompt = None
            self.embedding = nn.Parameter(vocabulary_start(backbone, config.length, generator))
            self.prompt_encoder = PromptEncoder(backbone.hidden_size, config.hidden)

    def prompts(self) -> torch.Tensor:
        if self.prompt_encoder is None:
            return self.prompt
        return self.prompt_encoder(self.embedding)

    def finalise(self) -> None:
        """Keep only the prompt encoder's output (what is stored and served)."""
        if self.prompt_encoder is None:
            return
        with torch.no_grad():
            final = self.prompts().detach().clone()
        self.embedding = None
        self.prompt_encoder = None
        self.prompt = nn.Parameter(final)
