"""One task's key/value prefixes, [layers, 2, length, width]: at every layer each row's
virtual tokens get the prefix's keys and values in place of their own, so the row's tokens
attend to them as to Li & Liang's prefix (the slots' own queries are never read).

They start as the frozen encoder's keys and values of real words (Li & Liang's better init);
with `hidden` > 0 they train as that start plus an MLP of a learned embedding (last layer zero
at first) and `finalise` stores the result.
"""

import torch
from torch import nn

from list_core.adapters import adapter_plan
from list_core.placeholders import placeholder
from list_core.sites import site_key
from list_core.tuners.prefix.config import PrefixConfig
from list_core.tuners.prefix.layer import with_front
from list_core.tuning import Tuner
from list_core.virtual_tokens import sample_token_ids


class PrefixTuner(Tuner):
    def __init__(
        self,
        config: PrefixConfig,
        backbone,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.virtual_tokens = config.length
        layers = sorted({site.layer for site in backbone.sites})
        self.where = {}
        for number, layer in enumerate(layers):
            self.where[site_key(layer, "key")] = (number, 0)
            self.where[site_key(layer, "value")] = (number, 1)
        self.site_keys = list(self.where)
        shape = (len(layers), 2, config.length, backbone.hidden_size)
        self.embedding: nn.Parameter | None = None
        self.mlp: nn.Module | None = None
        if not initialise:
            self.prefix = placeholder(*shape)
            return
        start = _captured(backbone, config.length, generator)
        if config.hidden == 0:
            self.prefix = nn.Parameter(start)
            return
        self.prefix = None
        self.start = start
        width = backbone.hidden_size
        self.embedding = nn.Parameter(torch.randn(config.length, width, generator=generator))
        self.mlp = nn.Sequential(
            nn.Linear(width, config.hidden),
            nn.Tanh(),
            nn.Linear(config.hidden, 2 * len(layers) * width),
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def prefixes(self) -> torch.Tensor:
        if self.mlp is None:
            return self.prefix
        layers, _, length, width = self.start.shape
        change = self.mlp(self.embedding).view(length, layers, 2, width).permute(1, 2, 0, 3)
        return self.start + change

    def at_site(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        layer, which = self.where[key]
        return with_front(out, self.prefixes()[layer, which])

    def finalise(self) -> None:
        """Keep only the final prefixes (what is stored and served)."""
        if self.mlp is None:
            return
        with torch.no_grad():
            final = self.prefixes().detach().clone()
        self.embedding = None
        self.mlp = None
        del self.start
        self.prefix = nn.Parameter(final)


class _Capture:
    """A plan that records the keys and values every layer computes, changing nothing."""

    def __init__(self) -> None:
        self.seen: dict[str, torch.Tensor] = {}

    def apply(self, key: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if key.endswith(("_key", "_value")):
            self.seen[key] = out[0].detach().float()
        return out

    def run_layer(self, layer: int, base: nn.Module, args: tuple, kwargs: dict):
        return base(*args, **kwargs)


@torch.no_grad()
def _captured(backbone, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """The frozen encoder's keys and values over `length` random ordinary tokens."""
    ids = sample_token_ids(backbone.tokenizer, length, generator)
    input_ids = torch.tensor([ids], device=backbone.device)
    capture = _Capture()
    with adapter_plan(capture):
        backbone.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    layers = sorted({site.layer for site in backbone.sites})
    return torch.stack(
        [
            torch.stack(
                [capture.seen[site_key(layer, "key")], capture.seen[site_key(layer, "value")]]
            )
            for layer in layers
        ]
    ).clone()
