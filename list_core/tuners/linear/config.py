"""The linear probe's options: none. Nothing inside or after the backbone trains, only the
task's head."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class LinearConfig(TunerConfig):
    name = "linear"
    scripted = True

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls()

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.linear.model import HeadOnly

        return HeadOnly(self)
