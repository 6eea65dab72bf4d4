"""Prefix tuning's options: the prefix length and the reparameterising MLP's width (Li & Liang
2021; 0 trains the prefixes directly)."""

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
class PrefixConfig(TunerConfig):
    """`length` key/value prefixes per layer; trained through an MLP of width `hidden` when it
    is > 0, stored as the final prefixes either way."""

    name = "prefix"

    length: int = 10
    hidden: int = 0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise FieldError("hyperparameters.prefix_length", "must be >= 1")
        if self.hidden < 0:
            raise FieldError("hyperparameters.prefix_hidden", "must be >= 0")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        check_room("prefix_length", hp.prefix_length, backbone, hp.max_length)
        return cls(length=hp.prefix_length, hidden=hp.prefix_hidden)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.prefix.model import PrefixTuner

        return PrefixTuner(self, backbone, generator, initialise)
