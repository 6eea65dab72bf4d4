"""A version's evaluation is the full report: accuracy, macro-F1, per-label precision, recall
and F1, and the confusion matrix, on the task's evaluation set."""

import pytest

from list_core.backbone import load_backbone
from list_core.data import Example
from list_core.evaluation import predict_labels
from list_core.metrics import classification_report
from list_core.prompts import TaskSpec
from list_core.training import train_task
from tests.engine.helpers import EXAMPLES, UNLABELED


def test_the_report_by_hand() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    report = classification_report(gold, predicted, ["a", "b", "c"])
    assert report["examples"] == 6 and report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_label"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert report["per_label"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_label"]["c"]["precision"] == 0.5 and report["per_label"]["c"]["recall"] == 1
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["confusion_matrix"] == {
        "labels": ["a", "b", "c"],
        "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]],
    }


def test_a_label_never_predicted_or_seen_scores_zero_not_an_error() -> None:
    report = classification_report(["a", "a"], ["a", "a"], ["a", "b"])
    assert report["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert classification_report([], [], ["a", "b"])["accuracy"] == 0.0


def test_training_reports_the_evaluation_in_the_metrics(tiny_roberta_path) -> None:
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    spec = TaskSpec.create(["negative", "positive"], None, {"negative": "bad", "positive": "good"})
    evaluation = [
        Example("a great film", "positive"),
        Example("a dull and boring plot", "negative"),
        Example("lovely music", "positive"),
    ]
    overrides = {"budget": "fast", "teacher_steps": 3, "unlabeled_steps": 2, "labeled_steps": 1}
    result = train_task(backbone, spec, EXAMPLES, UNLABELED, "list", overrides, evaluation)
    report = result.metrics["evaluation"]
    assert report == classification_report(
        [e.label for e in evaluation],
        predict_labels(backbone, result.model, evaluation),
        ["negative", "positive"],
    )
    assert result.metrics["evaluation_accuracy"] == report["accuracy"]
    assert set(report["per_label"]) == {"negative", "positive"}
    assert sum(map(sum, report["confusion_matrix"]["matrix"])) == 3
