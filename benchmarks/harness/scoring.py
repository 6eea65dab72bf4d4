"""Scoring a task model on a test set: predicted labels, accuracy and macro-F1.

Texts are batched in order of length so padding stays small: scoring ~2,000 test texts per job
is a noticeable share of a job's CPU time otherwise.
"""

from collections.abc import Sequence

import torch

from list_core.backbone import Backbone
from list_core.data import Example
from list_core.metrics import accuracy, macro_f1
from list_core.task_model import TaskModel


def predict_labels(
    backbone: Backbone, model: TaskModel, examples: Sequence[Example], batch_size: int = 64
) -> list[str]:
    """The arg-max label for every example, in the examples' order."""
    logits = predict_logits(backbone, model, examples, batch_size)
    return [model.spec.labels[i] for i in logits.argmax(-1).tolist()]


@torch.inference_mode()
def predict_logits(
    backbone: Backbone, model: TaskModel, examples: Sequence[Example], batch_size: int = 64
) -> torch.Tensor:
    """The served label logits of every example ([examples, labels], fp32 on the CPU)."""
    model.eval()
    rows = model.encode([e.text for e in examples], [e.text_b for e in examples])
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    logits = torch.zeros(len(rows), len(model.spec.labels))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        chunk = model.logits_for_rows(backbone, [rows[i] for i in indices])
        logits[indices] = chunk.float().cpu()
    return logits


def score(examples: Sequence[Example], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy and macro-F1 of `predicted` against the examples' gold labels."""
    gold = [e.label for e in examples]
    return {"accuracy": accuracy(gold, predicted), "macro_f1": macro_f1(gold, predicted, labels)}
