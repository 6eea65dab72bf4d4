"""LoRA's options: rank, alpha and the Linear layers it adapts (query and value by default)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.field_error import FieldError
from list_core.sites import LINEAR_PLACES
from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class LoraConfig(TunerConfig):
    """`W x + (alpha / rank) B A x` at each target Linear (Hu et al. 2021); `targets` are site
    places (`query`, `key`, `value`, `attention` = attention-output dense, `intermediate`,
    `ffn` = FFN-output dense)."""

    name = "lora"

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("query", "value")

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise FieldError("hyperparameters.lora_rank", "must be >= 1")
        if self.alpha <= 0:
            raise FieldError("hyperparameters.lora_alpha", "must be > 0")
        bad = [t for t in self.targets if t not in LINEAR_PLACES]
        if not self.targets or bad:
            raise FieldError(
                "hyperparameters.lora_targets",
                f"must be a non-empty list of {list(LINEAR_PLACES)}",
            )

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls(rank=hp.lora_rank, alpha=hp.lora_alpha, targets=hp.lora_targets)

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.lora.model import LoraTuner

        return LoraTuner(self, backbone, generator, initialise)
