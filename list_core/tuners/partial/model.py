"""One task's own copies of the encoder's top k layers. In a mixed batch every row shares the
lower layers; at each copied layer the task's rows run its copy and the others the shared one
(`MixedAdapterPlan.run_layer`)."""

import copy

from torch import nn

from list_core.placeholders import placeholder
from list_core.sites import unwrapped
from list_core.tuners.partial.config import PartialConfig
from list_core.tuners.partial.layer import InOwnDtype
from list_core.tuning import Tuner


class TopLayers(Tuner):
    def __init__(self, config: PartialConfig, backbone, initialise: bool = True) -> None:
        super().__init__()
        self.config = config
        shared = backbone.encoder.encoder.layer
        first = len(shared) - config.layers
        self.layers = nn.ModuleDict()
        for number in range(first, len(shared)):
            layer = unwrapped(shared[number])
            memo = {}
            if not initialise:  # stand-ins: the copy allocates nothing; copies train in fp32
                memo = {id(p): placeholder(*p.shape) for p in layer.parameters()}
            own = copy.deepcopy(layer, memo)
            if initialise:
                own.requires_grad_(True)
            self.layers[str(number)] = own

    def layer_module(self, layer: int):
        if str(layer) not in self.layers:
            return None
        return InOwnDtype(self.layers[str(layer)])

    @property
    def backbone_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def train(self, mode: bool = True) -> "TopLayers":
        """The copies stay in eval mode (no dropout), as the shared encoder does."""
        super().train(mode)
        for layer in self.layers.values():
            layer.eval()
        return self

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}"
