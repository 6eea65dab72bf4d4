"""Tiny task models for the serving tests: distinct adapters on one shared tiny backbone."""

from collections.abc import Callable

import pytest
import torch

from list_core.adapters import AdapterConfig
from list_core.backbone import Backbone, load_backbone
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel


@pytest.fixture(scope="session")
def tiny_backbone(tiny_roberta_path) -> Backbone:
    return load_backbone(str(tiny_roberta_path), device="cpu")


@pytest.fixture(scope="session")
def make_model(tiny_backbone: Backbone) -> Callable[..., TaskModel]:
    """A task model whose adapters and head differ enough from other seeds to tell apart."""

    def make(seed: int, method: str = "prompt", labels: int = 2) -> TaskModel:
        names = ["pos", "neg", "meh"][:labels]
        words = dict(zip(names, ["great", "terrible", "okay"], strict=False))
        spec = TaskSpec.create(names, label_words=words)
        config = AdapterConfig(bottleneck=4, init_std=1.0)
        generator = torch.Generator().manual_seed(seed)
        model = TaskModel(tiny_backbone, spec, method, config, 64, generator=generator)
        with torch.no_grad():  # pretrained-copied heads barely differ on random tiny weights
            for parameter in model.head.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.15)
        model.eval()
        model.requires_grad_(False)
        return model

    return make
