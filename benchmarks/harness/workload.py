"""What the in-process benchmarks and the load generators send: sst-2 test sentences, and task
adapters with distinct, realistic weights on one backbone."""

import json
from itertools import islice
from pathlib import Path

import torch

from list_core.adapters import AdapterConfig
from list_core.backbone import Backbone
from list_core.inference import Row, encode_rows
from list_core.prompts import EncodedRow, TaskSpec
from list_core.task_model import TaskModel

SST2_TEST = Path(__file__).resolve().parents[1] / "data" / "sst-2" / "test.jsonl"
SENTIMENT_WORDS = {"negative": "terrible", "positive": "great"}


def test_sentences(count: int | None = None) -> list[str]:
    """The first `count` sst-2 test sentences (all by default), in the file's order."""
    with open(SST2_TEST, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in islice(handle, count)]


def make_models(backbone: Backbone, count: int, bottleneck: int) -> list[TaskModel]:
    """`count` two-label task models, each with its own random adapter weights (init std 0.02,
    not the near-zero init: a trained adapter is not the identity)."""
    spec = TaskSpec.create(["negative", "positive"], label_words=SENTIMENT_WORDS)
    config = AdapterConfig(bottleneck=bottleneck, init_std=0.02)
    models = []
    for seed in range(count):
        generator = torch.Generator().manual_seed(seed)
        model = TaskModel(backbone, spec, "list", config, 64, generator=generator)
        models.append(model.eval().requires_grad_(False))
    return models


def encode_rows_for(models: list[TaskModel], texts: list[str]) -> list[EncodedRow]:
    """Row i is `texts[i]` for `models[i]`, encoded as the batcher encodes a flush."""
    return encode_rows([Row(model, text) for model, text in zip(models, texts, strict=True)])
