"""The warm-up forward the server runs once its backbone is loaded (which backbone, and loading
it, is list_core's `backbone_choice`, shared with the command line)."""

import torch

from list_core.adapters import adapter_plan
from list_core.backbone import Backbone


@torch.no_grad()
def warm_up(backbone: Backbone) -> None:
    """One real forward, so the first request does not pay for lazy init and allocation."""
    encoded = backbone.tokenizer(["warm up the backbone"], return_tensors="pt")
    with adapter_plan(None):
        backbone.hidden_states(
            encoded["input_ids"].to(backbone.device),
            encoded["attention_mask"].to(backbone.device),
        )
