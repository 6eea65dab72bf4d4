"""A retrain's promotion decision (`if_better`) on a real stored version and the real backbone:
the served version is measured on the evaluation set as it is now, and a tie promotes."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from list_core.adapters import AdapterConfig
from list_core.backbone import load_backbone
from list_core.data import Example
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from list_core.training import TrainingResult, evaluate_accuracy
from service.jobs.promotion import ServedVersion, decide
from service.store import AdapterStore

EVALUATION = [
    Example("a great film", "pos"),
    Example("a terrible film", "neg"),
    Example("great fun", "pos"),
    Example("terrible and dull", "neg"),
]


@pytest.fixture(scope="module")
def world(tiny_roberta_path: Path, tmp_path_factory):
    backbone = load_backbone(str(tiny_roberta_path), device="cpu")
    spec = TaskSpec.create(["pos", "neg"], label_words={"pos": "great", "neg": "terrible"})
    model = TaskModel(
        backbone, spec, "prompt", AdapterConfig(bottleneck=4), 64, torch.Generator().manual_seed(1)
    )
    model.eval()
    store = AdapterStore(tmp_path_factory.mktemp("store"))
    stored = store.write("tnt_a", "tsk_a", 1, model, backbone)
    served = ServedVersion(1, stored.path, stored.sha256)
    accuracy = evaluate_accuracy(backbone, model, EVALUATION)
    context = SimpleNamespace(backbone=lambda: backbone, store=store)
    return context, served, accuracy


def result(accuracy: float) -> TrainingResult:
    return TrainingResult(
        model=None, hyperparameters=None, metrics={"evaluation_accuracy": accuracy}
    )


def test_if_better_measures_the_served_version_and_a_tie_promotes(world) -> None:
    context, served, accuracy = world
    worse = decide(context, "retrain", "if_better", served, EVALUATION, result(accuracy - 0.25))
    assert worse["promoted"] is False and worse["serving_accuracy"] == accuracy
    assert worse["reason"].startswith("worse on the evaluation set")
    tie = decide(context, "retrain", "if_better", served, EVALUATION, result(accuracy))
    assert tie["promoted"] is True and tie["new_accuracy"] == tie["serving_accuracy"]
    assert tie["evaluation_examples"] == 4 and tie["serving_version"] == 1


def test_what_promotes_without_a_comparison(world) -> None:
    context, served, accuracy = world
    low = result(accuracy - 0.25)
    assert decide(context, "create", None, None, EVALUATION, low) is None  # first version
    assert decide(context, "retrain", "always", served, EVALUATION, low)["promoted"] is True
    nothing = decide(context, "retrain", "if_better", served, [], low)
    assert nothing["promoted"] is True and nothing["reason"] == "no evaluation set to compare on"
    gone = ServedVersion(1, "tnt_a/tsk_a/v1-missing", served.sha256)
    lost = decide(context, "retrain", "if_better", gone, EVALUATION, low)
    assert lost["promoted"] is True and "could not be loaded" in lost["reason"]
