"""One task's bias changes at every Linear and LayerNorm of every layer (zero at the start)."""

import torch
from torch import nn

from list_core.placeholders import placeholder
from list_core.sites import LAYER_PLACES, site_key
from list_core.tuners.bitfit.config import BitFitConfig
from list_core.tuners.bitfit.layer import biased
from list_core.tuners.lora.model import linear_shape
from list_core.tuning import Tuner


class BitFitTuner(Tuner):
    def __init__(self, config: BitFitConfig, backbone, initialise: bool = True) -> None:
        super().__init__()
        self.config = config
        layers = sorted({site.layer for site in backbone.sites})
        self.site_keys = [site_key(layer, place) for layer in layers for place in LAYER_PLACES]
        self.bias = nn.ParameterDict()
        for key in self.site_keys:
            place = key.partition("_")[2]
            width = (
                backbone.hidden_size if place.endswith("norm") else linear_shape(backbone, place)[1]
            )
            self.bias[key] = (
                placeholder(width) if not initialise else nn.Parameter(torch.zeros(width))
            )

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return biased(out, self.bias[key])
