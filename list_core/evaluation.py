"""Scoring a trained task model on held-out examples: for reports only, never for training or
checkpoint selection."""

from collections.abc import Sequence

import torch
from torch import nn

from list_core.backbone import Backbone
from list_core.data import Example
from list_core.metrics import classification_report


@torch.no_grad()
def predict_labels(
    backbone: Backbone, model: nn.Module, examples: Sequence[Example], batch_size: int = 64
) -> list[str]:
    """The model's label for each example, in order (the model's train/eval mode is kept)."""
    predicted: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            rows = model.encode([e.text for e in chunk], [e.text_b for e in chunk])
            indices = model.logits_for_rows(backbone, rows).argmax(-1).tolist()
            predicted += [model.spec.labels[i] for i in indices]
    finally:
        model.train(was_training)
    return predicted


def evaluation_report(backbone: Backbone, model: nn.Module, examples: Sequence[Example]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix."""
    predicted = predict_labels(backbone, model, examples)
    return classification_report(
        [str(e.label) for e in examples], predicted, list(model.spec.labels)
    )
