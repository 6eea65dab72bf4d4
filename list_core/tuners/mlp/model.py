"""One task's MLP-k over the pooled text (the survey's MLP-k baseline); the backbone is
untouched, so the scripted forward serves its rows and the MLP runs after it."""

import torch

from list_core.tuners.mlp.config import MlpConfig
from list_core.tuners.mlp.layer import pooled_change, residual_mlp
from list_core.tuning import Tuner


class PooledMlp(Tuner):
    transforms_hidden = True

    def __init__(
        self,
        config: MlpConfig,
        width: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.mlp = residual_mlp(config.layers, width, generator, initialise)

    def transform_hidden(self, backbone, hidden, input_ids, attention_mask) -> torch.Tensor:
        return pooled_change(self.mlp, hidden, attention_mask)
