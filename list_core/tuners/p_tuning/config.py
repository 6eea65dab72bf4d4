"""P-tuning's options: the number of prompt tokens and the prompt encoder's width (Liu et al.
2021; the prompt encoder trains, its output is what is stored)."""

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
class PTuningConfig(TunerConfig):
    """`length` prompt tokens produced by an MLP prompt encoder of width `hidden`."""

    name = "p_tuning"

    length: int = 10
    hidden: int = 64

    def __post_init__(self) -> None:
        if self.length < 1:
            raise FieldError("hyperparameters.prompt_length", "must be >= 1")
        if self.hidden < 1:
            raise FieldError("hyperparameters.prompt_encoder_hidden", "must be >= 1")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        check_room("prompt_length", hp.prompt_length, backbone, hp.max_length)
        return cls(length=hp.prompt_length, hidden=hp.prompt_encoder_hidden)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.p_tuning.model import PTuningPrompt

        return PTuningPrompt(self, backbone, generator, initialise)
