"""Scoring a trained task model on held-out examples: for reports only, never for training or
checkpoint selection."""

from collections.abc import Sequence

import torch
from torch import nn

from list_core.backbone import Backbone
from list_core.data import Example
from list_core.metrics import classification_report


@torch.no_grad()
def example_logits(
    backbone: Backbone, model: nn.Module, examples: Sequence[Example], batch_size: int = 64
) -> torch.Tensor:
    """The model's fp32 logits for each example, in order, on the CPU, scored in eval mode
    `batch_size` at a time (the model's train/eval mode is kept)."""
    chunks: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            rows = model.encode([e.text for e in chunk], [e.text_b for e in chunk])
            chunks.append(model.logits_for_rows(backbone, rows).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, len(model.spec.labels))


def predict_labels(
    backbone: Backbone, model: nn.Module, examples: Sequence[Example], batch_size: int = 64
) -> list[str]:
    """The model's label for each example, in order (the model's train/eval mode is kept)."""
    indices = example_logits(backbone, model, examples, batch_size).argmax(-1).tolist()
    return [model.spec.labels[i] for i in indices]


def evaluation_report(backbone: Backbone, model: nn.Module, examples: Sequence[Example]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix."""
    predicted = predict_labels(backbone, model, examples)
    return classification_report(
        [str(e.label) for e in examples], predicted, list(model.spec.labels)
    )
