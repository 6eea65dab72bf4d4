"""SetFit's contrastive recipe on the shared frozen backbone (`method: "contrastive"`, and
`list` from a contrastive teacher): its pairs, that its objective pulls same-label texts
together, that it learns the synthetic keyword task with several tuners, and the pairs that
cannot work. The tiny encoder runs on one torch thread (see test_tuner_learning.py)."""

import itertools
import json

import pytest
import torch
from torch.nn import functional as F

from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.contrastive import sentence_pairs
from list_core.field_error import FieldError
from list_core.heads.base import mean_pool
from list_core.task_model import TaskModel
from list_core.training import evaluate_accuracy, train_task
from list_core.tuners.linear.config import LinearConfig
from service.cli import main as cli_main
from tests.engine.helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED
from tests.engine.test_tuner_learning import SPEC, _task
from tests.tiny_models import build_tiny_bert

SEEDS = (1, 2, 3)
SCHEDULE = {"budget": "fast", "bottleneck": 8, "contrastive_lr": 1e-2, "prompt_length": 4}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = build_tiny_bert(tmp_path_factory.mktemp("contrastive-bert"), mlm_head=False)
    yield load_backbone(str(folder), "cpu")
    torch.set_num_threads(threads)


def test_pairs_are_setfits_iterations_of_each_kind_without_self_pairs():
    targets = [0, 0, 0, 1, 1, 2]
    pairs = sentence_pairs(targets, 3, torch.Generator().manual_seed(1))
    assert len(pairs) == 2 * 3 * len(targets)
    positive = [(i, j) for i, j, label in pairs if label == 1.0]
    negative = [(i, j) for i, j, label in pairs if label == 0.0]
    assert len(positive) == len(negative) == 3 * len(targets)
    assert all(targets[i] == targets[j] for i, j in positive)
    assert all(targets[i] != targets[j] for i, j in negative)
    assert all(i < j for i, j, _ in pairs)
    # Cycled over every distinct pair of its kind before any repeats.
    assert set(positive[:4]) == {(0, 1), (0, 2), (1, 2), (3, 4)}
    assert [label for _, _, label in pairs[:4]] == [1.0, 0.0, 1.0, 0.0]
    # One example per label: no positive pair exists, so only negatives are drawn.
    alone = sentence_pairs([0, 1, 2], 2, torch.Generator().manual_seed(1))
    assert len(alone) == 6 and {label for _, _, label in alone} == {0.0}


def _cosines(backbone, model: TaskModel, texts: list[str], labels: list[str]) -> float:
    """Mean cosine of same-label pairs minus that of different-label pairs."""
    rows = model.encode(texts, [None] * len(texts))
    batch = collate(rows, model.pad_id, backbone.device)
    with torch.no_grad():
        pooled = F.normalize(mean_pool(model.hidden_states(backbone, batch), batch.attention_mask))
    same, other = [], []
    for i, j in itertools.combinations(range(len(texts)), 2):
        (same if labels[i] == labels[j] else other).append(float(pooled[i] @ pooled[j]))
    return sum(same) / len(same) - sum(other) / len(other)


def test_the_objective_pulls_same_label_texts_together(backbone):
    labeled, test = _task(1)
    texts, labels = [e.text for e in test[:40]], [e.label for e in test[:40]]
    reports = []
    overrides = {**SCHEDULE, "contrastive_lr": 3e-2, "head_steps": 0}
    result = train_task(
        backbone, SPEC, labeled, [], "contrastive", overrides, progress=reports.append
    )
    untrained = TaskModel(backbone, SPEC, "contrastive", result.model.adapter_config, 64)
    before = _cosines(backbone, untrained.eval(), texts, labels)
    after = _cosines(backbone, result.model, texts, labels)
    assert after > before + 0.1, (before, after)
    losses = [report.losses["pair_loss"] for report in reports]
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.fixture(scope="module")
def untrained(backbone) -> float:
    model = TaskModel(backbone, SPEC, "contrastive", LinearConfig(), 64).eval()
    return sum(evaluate_accuracy(backbone, model, _task(seed)[1]) for seed in SEEDS) / len(SEEDS)


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["adapter", "houlsby", "lora", "bitfit", "prompt_tuning"])
def test_contrastive_learns_the_keyword_task(backbone, untrained, tuner):
    scores = []
    for seed in SEEDS:
        labeled, test = _task(seed)
        result = train_task(
            backbone, SPEC, labeled, [], "contrastive", {**SCHEDULE, "seed": seed}, tuner=tuner
        )
        assert result.model.head_kind == "similarity" and result.metrics["method"] == "contrastive"
        scores.append(evaluate_accuracy(backbone, result.model, test))
    # The prior already reads "great" in half the positives: ~0.70 (the `untrained` fixture).
    assert sum(scores) / len(scores) >= max(untrained + 0.12, 0.78), (untrained, scores)
    assert min(scores) >= 0.65, scores


@pytest.mark.slow
def test_list_from_a_contrastive_teacher_learns_the_keyword_task(backbone, untrained):
    scores = []
    for seed in SEEDS:
        labeled, test = _task(seed)
        unlabeled = [e.text for e in test[60:]]
        overrides = {
            **SCHEDULE,
            "seed": seed,
            "teacher": "contrastive",
            "sessions": 1,
            "unlabeled_steps": 20,
            "labeled_steps": 20,
            "student_lr": 1e-2,
        }
        result = train_task(backbone, SPEC, labeled, unlabeled, "list", overrides)
        phases = [entry["phase"] for entry in result.metrics["history"]]
        assert phases == ["teacher", "session"]
        scores.append(evaluate_accuracy(backbone, result.model, test[:60]))
    assert sum(scores) / len(scores) >= max(untrained + 0.15, 0.75), (untrained, scores)


def test_progress_counts_the_contrastive_and_head_steps(backbone):
    reports = []
    overrides = {**TINY_STEPS, "contrastive_iterations": 2, "head_steps": 3}
    result = train_task(
        backbone, SENTIMENT, EXAMPLES, [], "contrastive", overrides, progress=reports.append
    )
    steps = result.hyperparameters.contrastive_steps(len(EXAMPLES))
    assert steps == 2 and result.metrics["steps"] == steps + 3
    assert [r.phase for r in reports] == ["contrastive"] * steps + ["head"] * 3
    assert reports[-1].fraction == 1.0 and reports[-1].trained_steps == steps + 3
    assert result.hyperparameters.total_steps("contrastive", 0, len(EXAMPLES)) == steps + 3


@pytest.mark.parametrize(
    ("method", "overrides", "fields"),
    [
        ("contrastive", {}, ("tuner", "method")),
        ("list", {"teacher": "contrastive"}, ("tuner", "method", "hyperparameters.teacher")),
    ],
)
def test_a_contrastive_recipe_with_nothing_to_tune_is_refused(backbone, method, overrides, fields):
    with pytest.raises(FieldError) as refused:
        train_task(
            backbone,
            SENTIMENT,
            EXAMPLES,
            UNLABELED,
            method,
            {**TINY_STEPS, **overrides},
            tuner="linear",
        )
    assert refused.value.fields == fields
    assert "'linear'" in refused.value.message and repr(method) in refused.value.message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("teacher", "setfit", "must be one of"),
        ("selection", "best", "must be one of"),
        ("cv_folds", 1, ">= 2"),
        ("contrastive_iterations", 0, ">= 1"),
        ("contrastive_lr", 0, "> 0"),
        ("head_steps", -1, ">= 0"),
    ],
)
def test_bad_recipe_options_name_their_field(backbone, key, value, message):
    with pytest.raises(FieldError, match=message) as refused:
        train_task(backbone, SENTIMENT, EXAMPLES, [], "contrastive", {**TINY_STEPS, key: value})
    assert refused.value.field == f"hyperparameters.{key}"


def test_on_an_mlm_backbone_the_contrastive_recipes_train_the_pooled_similarity_head(
    tiny_roberta_path,
):
    mlm = load_backbone(str(tiny_roberta_path), "cpu")
    assert mlm.prompt_head_kind == "mlm"
    overrides = {**TINY_STEPS, "contrastive_iterations": 1, "head_steps": 2}
    for method, extra in (("contrastive", {}), ("list", {"teacher": "contrastive"})):
        result = train_task(mlm, SENTIMENT, EXAMPLES, UNLABELED, method, {**overrides, **extra})
        assert result.model.head_kind == "similarity"
    # mlp reads the pooled text, which is what the contrastive head reads.
    result = train_task(mlm, SENTIMENT, EXAMPLES, [], "contrastive", overrides, tuner="mlp")
    assert result.model.tuner == "mlp"


def test_the_cli_trains_contrastive_with_cv_selection_and_predicts(tiny_roberta_path, tmp_path):
    """`listserve train --method contrastive --set selection="cv"` saves an adapter whose
    config records the recipe's head and the calibration; `predict` serves it."""
    examples = tmp_path / "train.jsonl"
    examples.write_text(
        "".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in EXAMPLES)
    )
    out = tmp_path / "adapter"
    settings = ["contrastive_iterations=2", "head_steps=5", 'selection="cv"', "cv_folds=2"]
    arguments = ["train", "--backbone", str(tiny_roberta_path), "--examples", str(examples)]
    arguments += ["--method", "contrastive", "--budget", "fast", "--device", "cpu"]
    arguments += [part for setting in settings for part in ("--set", setting)]
    assert cli_main([*arguments, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "contrastive" and config["head_kind"] == "similarity"
    assert config["calibration"]["choice"] in ("prior", "teacher", "blend teacher")
    predicted = ["predict", "--adapter", str(out), "--input", str(examples), "--device", "cpu"]
    assert cli_main(predicted) == 0
