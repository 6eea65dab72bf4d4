"""Side-tuning's options: the width of the side network (Zhang et al. 2020)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.field_error import FieldError
from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class SideConfig(TunerConfig):
    """A side network of width `hidden` over the input, blended with the frozen encoder's
    output by a learned weight."""

    name = "side"
    scripted = True

    hidden: int = 64

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise FieldError("hyperparameters.side_hidden", "must be >= 1")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls(hidden=hp.side_hidden)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.side.model import SideNetwork

        return SideNetwork(self, backbone.hidden_size, generator, initialise)
