"""Tiny task models for the serving tests: distinct adapters on one shared tiny backbone, and
batchers built on it."""

from collections.abc import Callable

import pytest
import torch

from list_core.adapters import AdapterConfig
from list_core.backbone import Backbone, load_backbone
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from service.serving.baselines import batching_for
from service.serving.batcher import DynamicBatcher
from service.serving.flush import FlushLimits

# What the batcher tests were written for, not the service's defaults (service/settings.py):
# flushes of up to 64 rows and 1,024 queued rows.
TEST_LIMITS = {
    "max_batch_rows": 64,
    "max_batch_tokens": 8192,
    "max_wait_ms": 5.0,
    "max_wait_for_loads_ms": 50.0,
    "max_queue_rows": 1024,
}


def make_batcher(
    backbone: Backbone,
    mode: str = "mixed",
    *,
    apply_mode: str = "gather",
    model_threads: int = 1,
    model_thread_nice: int = 0,
    heap_trim_interval_s: float = 0.0,
    adaptive_wait: bool = True,
    **limits: float,
) -> DynamicBatcher:
    """A batcher on `backbone`: one model thread at normal priority, no heap trims, and
    `TEST_LIMITS` unless a test changes one."""
    return DynamicBatcher(
        backbone,
        FlushLimits(**{**TEST_LIMITS, **limits}),
        batching_for(mode, backbone),
        apply_mode=apply_mode,
        model_threads=model_threads,
        model_thread_nice=model_thread_nice,
        heap_trim_interval_s=heap_trim_interval_s,
        adaptive_wait=adaptive_wait,
    )


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
