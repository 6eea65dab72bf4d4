"""MLP-k's options: `layers`, the depth of the MLP over the pooled text before the head."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

import torch

from list_core.field_error import FieldError
from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class MlpConfig(TunerConfig):
    """A residual MLP of `layers` Linear layers over the mean-pooled text; it needs a head that
    reads the pooled text (`classic`, or the similarity head), not one read at a mask."""

    name = "mlp"
    scripted = True
    pooled_heads_only: ClassVar[bool] = True

    layers: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.layers <= 8:
            raise FieldError("hyperparameters.mlp_layers", "must be between 1 and 8")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls(layers=hp.mlp_layers)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.mlp.model import PooledMlp

        return PooledMlp(self, backbone.hidden_size, generator, initialise)
