"""BitFit's options: none. It trains the bias terms only (Ben Zaken et al. 2022)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import torch

from list_core.tuning import Tuner, TunerConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class BitFitConfig(TunerConfig):
    """Every Linear's and LayerNorm's bias in every layer, stored as a change to the frozen
    one (`b + delta`), so the shared backbone keeps its own."""

    name = "bitfit"

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls()

    def build(
        self, backbone: "Backbone", generator: torch.Generator | None, initialise: bool
    ) -> Tuner:
        from list_core.tuners.bitfit.model import BitFitTuner

        return BitFitTuner(self, backbone, initialise)
