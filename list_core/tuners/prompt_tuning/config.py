"""Prompt tuning's options: the number of soft prompt tokens (Lester et al. 2021)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.field_error import FieldError
from list_core.tuning import Tuner, TunerConfig
from list_core.virtual_tokens import check_room

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class PromptTuningConfig(TunerConfig):
    """`length` soft prompt embeddings in front of every row's input embeddings."""

    name = "prompt_tuning"

    length: int = 10

    def __post_init__(self) -> None:
        if self.length < 1:
            raise FieldError("hyperparameters.prompt_length", "must be >= 1")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        check_room("prompt_length", hp.prompt_length, backbone, hp.max_length)
        return cls(length=hp.prompt_length)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.prompt_tuning.model import SoftPrompt

        return SoftPrompt(self.length, backbone, generator, initialise, self)
