"""What every tuner is: a config (its options) and a module holding one task's own tensors,
which acts on the shared frozen encoder only through the hooks below.

A tuner never holds or changes backbone weights (`partial` holds its own copies). Plans
(`list_core.adapters`) call its hooks for the rows that use it, so rows of any tuners share one
backbone forward:
- `at_site(key, x, out)`: the new output of the wrapped module at `key` for its rows, from that
  module's input `x` and output `out` (LoRA, BitFit, adapters, prefixes, soft prompts);
- `layer_module(layer)`: a module that runs a whole transformer layer in the shared one's place
  (`partial`'s own top layers);
- `transform_hidden(...)`: a change to the last hidden states before the head (`side`, `mlp`);
- `virtual_tokens`: slots its rows need in front of their tokens (prefix and prompt tuners).
"""

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import torch
from torch import nn

if TYPE_CHECKING:
    from list_core.hyperparams import Hyperparameters

# A `list_core.backbone.Backbone`; not imported, because the backbone installs the seam
# (`list_core.adapters`) that this module sits under.
Backbone = Any


@dataclass(frozen=True)
class TunerConfig(ABC):
    """A tuner's options, saved in the artifact's config.json (`as_dict`/`from_dict`)."""

    name: ClassVar[str]
    # Whether the scripted serving forward computes this tuner's rows (else their batch runs
    # on the eager forward, counted in `list_core.eager_fallback`).
    scripted: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_hyperparameters(cls, hp: "Hyperparameters", backbone: Backbone) -> Self:
        """The options a training run uses, checked against the backbone; a bad one raises
        `FieldError` naming `hyperparameters.<field>`."""

    @abstractmethod
    def build(
        self, backbone: Backbone, generator: torch.Generator | None, initialise: bool
    ) -> "Tuner":
        """The tuner's module for one task: fresh (`initialise`) or stand-ins for a load."""

    def as_dict(self) -> dict:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        fields = cls.__dataclass_fields__
        return cls(
            **{
                key: tuple(value) if isinstance(value, list) else value
                for key, value in data.items()
                if key in fields
            }
        )


class Tuner(nn.Module):
    """One task's tuner tensors and how they act; the defaults act nowhere."""

    config: TunerConfig
    # Whether `transform_hidden` does anything (checked without a call).
    transforms_hidden: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.site_keys: list[str] = []
        self.virtual_tokens = 0

    @property
    def scriptable(self) -> bool:
        return type(self.config).scripted

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The wrapped module's new output at `key` for this tuner's rows (only called for
        `key` in `site_keys`)."""
        return out

    def layer_module(self, layer: int) -> nn.Module | None:
        """A module to run transformer layer `layer` instead of the shared one, or None."""
        return None

    def transform_hidden(
        self,
        backbone: Backbone,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The last hidden states of this tuner's rows as its head should see them."""
        return hidden

    def finalise(self) -> None:
        """Turn what trained into what is stored and served, once training is over (a
        reparameterised prompt or prefix keeps only its final vectors)."""

    @property
    def backbone_bytes(self) -> int:
        """Bytes of copied backbone weights among this tuner's tensors (`partial` only)."""
        return 0
