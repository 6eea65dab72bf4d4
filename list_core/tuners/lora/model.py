"""One task's LoRA matrices, A [in, r] and B [r, out] per target Linear of every layer. B
starts at zero, so a fresh task computes exactly the frozen backbone."""

import math

import torch
from torch import nn

from list_core.placeholders import placeholder
from list_core.sites import site_key
from list_core.tuners.lora.config import LoraConfig
from list_core.tuners.lora.layer import lora_output
from list_core.tuning import Tuner


def linear_shape(backbone, place: str) -> tuple[int, int]:
    """(in, out) features of a layer's Linear at `place`."""
    hidden = backbone.hidden_size
    inner = int(backbone.encoder.config.intermediate_size)
    return {"intermediate": (hidden, inner), "ffn": (inner, hidden)}.get(place, (hidden, hidden))


class LoraTuner(Tuner):
    def __init__(
        self,
        config: LoraConfig,
        backbone,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.scale = config.scale
        layers = sorted({site.layer for site in backbone.sites})
        self.site_keys = [site_key(layer, place) for layer in layers for place in config.targets]
        self.down = nn.ParameterDict()
        self.up = nn.ParameterDict()
        for key in self.site_keys:
            fan_in, fan_out = linear_shape(backbone, key.partition("_")[2])
            if not initialise:
                self.down[key] = placeholder(fan_in, config.rank)
                self.up[key] = placeholder(config.rank, fan_out)
                continue
            bound = 1.0 / math.sqrt(fan_in)  # PEFT's default (kaiming uniform, a = sqrt(5))
            down = torch.empty(fan_in, config.rank).uniform_(-bound, bound, generator=generator)
            self.down[key] = nn.Parameter(down)
            self.up[key] = nn.Parameter(torch.zeros(config.rank, fan_out))

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return lora_output(x, out, self.down[key], self.up[key], self.scale)
