"""Partial-k's options: how many top layers are copied per task and trained."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.field_error import FieldError
from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class PartialConfig(TunerConfig):
    """The top `layers` transformer layers, copied from the frozen encoder for the task: the
    only tuner whose bytes are copied backbone weights."""

    name = "partial"

    layers: int = 1

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise FieldError("hyperparameters.partial_layers", "must be >= 1")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        count = len({site.layer for site in backbone.sites})
        if hp.partial_layers > count:
            raise FieldError(
                "hyperparameters.partial_layers",
                f"the backbone has {count} layers; at most {count} can be copied",
            )
        return cls(layers=hp.partial_layers)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.partial.model import TopLayers

        return TopLayers(self, backbone, initialise)
