"""Accuracy, macro-F1 and the full per-label report every evaluation in listserve uses."""

from collections.abc import Sequence


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Fraction of positions where the prediction equals the gold label."""
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over `labels` (a label never seen scores 0)."""
    scores = [row["f1"] for row in per_label(gold, predicted, labels).values()]
    return sum(scores) / len(scores) if scores else 0.0


def per_label(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support (gold count) of each label; 0 where undefined."""
    pairs = list(zip(gold, predicted, strict=True))
    report = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in pairs)
        fp = sum(g != label and p == label for g, p in pairs)
        fn = sum(g == label and p != label for g, p in pairs)
        report[label] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0,
            "support": tp + fn,
        }
    return report


def confusion_matrix(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    """`matrix[i][j]`: examples of gold label `labels[i]` predicted as `labels[j]`."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    return matrix


def classification_report(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict:
    """Everything a version reports about its evaluation set, JSON-ready."""
    return {
        "examples": len(gold),
        "accuracy": accuracy(gold, predicted),
        "macro_f1": macro_f1(gold, predicted, labels),
        "per_label": per_label(gold, predicted, labels),
        "confusion_matrix": {
            "labels": list(labels),
            "matrix": confusion_matrix(gold, predicted, labels),
        },
    }
