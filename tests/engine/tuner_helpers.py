"""Tasks of every tuner, built once per backbone, for the tuner tests."""

import torch

from list_core.backbone import Backbone
from list_core.task_model import TaskModel
from list_core.training import train_task
from list_core.tuners.registry import TUNERS

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED

# `mlp` reads the pooled text, so with an MLM backbone it trains with `classic`.
METHOD = {"mlp": "classic"}
STEPS = {**TINY_STEPS, "prefix_hidden": 16, "partial_layers": 1}


def trained(backbone: Backbone, tuner: str, seed: int = 13):
    """A few steps of training with `tuner` (the TrainingResult)."""
    method = METHOD.get(tuner, "prompt")
    return train_task(
        backbone, SENTIMENT, EXAMPLES, UNLABELED, method, {**STEPS, "seed": seed}, tuner=tuner
    )


def nudged(model: TaskModel, seed: int) -> TaskModel:
    """`model` with every tuner tensor moved at random, so rows of different tasks of one tuner
    give clearly different answers (LoRA's B and other zero starts would not)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.adapters.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise.to(parameter.dtype) * 0.1)
    return model.eval()


def every_tuner_models(backbone: Backbone, per_tuner: int = 2) -> list[TaskModel]:
    """`per_tuner` distinct tasks of every tuner."""
    return [
        nudged(trained(backbone, tuner, seed).model, seed)
        for tuner in TUNERS
        for seed in range(1, per_tuner + 1)
    ]
