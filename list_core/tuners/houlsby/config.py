"""Houlsby adapters' options: the bottleneck adapter with a GELU in its middle."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from list_core.tuners.adapter.config import AdapterConfig

if TYPE_CHECKING:
    from list_core.backbone import Backbone
    from list_core.hyperparams import Hyperparameters


@dataclass(frozen=True)
class HoulsbyConfig(AdapterConfig):
    """`AdapterConfig` of kind `houlsby`, whatever `adapter_kind` says (that option belongs to
    the `adapter` tuner)."""

    name = "houlsby"

    kind: str = "houlsby"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind != "houlsby":
            raise ValueError(f"a houlsby adapter has kind 'houlsby', got {self.kind!r}")

    @classmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: "Backbone") -> Self:
        return cls(bottleneck=hp.bottleneck, placement=hp.placement)
