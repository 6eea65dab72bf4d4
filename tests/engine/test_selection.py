"""Never worse than the prior (`selection: "cv"`): k-fold cross-validation on the labels
chooses among the zero-shot prior, the checkpoints and their blends with the prior, and
calibrates the choice; what it ships serves in mixed batches and round-trips its artifact."""

import json

import pytest
import torch

from list_core.artifact import load_task_model, save_task_model
from list_core.backbone import load_backbone
from list_core.field_error import FieldError
from list_core.heads.base import TaskHead
from list_core.heads.classic import ClassicHead
from list_core.heads.mlm import MlmPromptHead
from list_core.heads.similarity import SimilarityHead
from list_core.hyperparams import fold_sizes
from list_core.inference import Row, predict_mixed
from list_core.prompts import TaskSpec
from list_core.selection import folds
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from list_core.training import evaluate_accuracy, train_task
from list_core.tuners.linear.config import LinearConfig
from tests.engine.helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED
from tests.engine.test_tuner_learning import SPEC, _task
from tests.tiny_models import build_tiny_bert

# Label words the keyword task's texts never contain: the prior is at chance.
BLIND = TaskSpec.create(["neg", "pos"], None, {"neg": "alpha", "pos": "omega"})
SCHEDULE = {
    "budget": "fast",
    "bottleneck": 8,
    "teacher_steps": 100,
    "teacher_lr": 1e-2,
    "selection": "cv",
}
TEXTS = ["great fun movie", "the plot was dull and boring", "nice", "awful"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = build_tiny_bert(tmp_path_factory.mktemp("selection-bert"), mlm_head=False)
    yield load_backbone(str(folder), "cpu")
    torch.set_num_threads(threads)


def _prior(backbone, spec: TaskSpec) -> TaskModel:
    return TaskModel(backbone, spec, "prompt", LinearConfig(), 64).eval()


def test_folds_are_stratified_and_sized_as_the_step_count_expects():
    spec = TaskSpec.create(["a", "b", "c"], None, {})
    examples = [type(EXAMPLES[0])(f"t{i}", label) for i, label in enumerate("aaaaaaabbbbbc")]
    assigned = folds(spec, examples, 5, seed=3)
    sizes = [assigned.count(f) for f in range(5)]
    assert sorted(sizes, reverse=True) == fold_sizes(len(examples), 5) == [3, 3, 3, 2, 2]
    for label in "ab":  # each label spread over the folds as evenly as it can be
        counts = [
            sum(1 for e, f in zip(examples, assigned, strict=True) if e.label == label and f == k)
            for k in range(5)
        ]
        assert max(counts) - min(counts) <= 1
    assert folds(spec, examples, 5, seed=3) == assigned != folds(spec, examples, 5, seed=4)


@pytest.mark.parametrize("seed", [1, 2])
def test_when_training_is_made_useless_cv_ships_the_prior(backbone, seed):
    labeled, test = _task(seed)
    overrides = {**SCHEDULE, "teacher_lr": 30.0, "seed": seed}  # diverges to one class
    result = train_task(backbone, SPEC, labeled, [], "prompt", overrides)
    selection = result.metrics["selection"]
    assert selection["choice"] == "prior", selection
    candidates = selection["candidates"]
    assert candidates["teacher"]["cv_accuracy"] < candidates["prior"]["cv_accuracy"]
    assert selection["cv_accuracy"] == candidates["prior"]["cv_accuracy"]
    assert result.model.tuner == "linear"  # the head as initialised, nothing else
    prior_accuracy = evaluate_accuracy(backbone, _prior(backbone, SPEC), test)
    assert evaluate_accuracy(backbone, result.model, test) == pytest.approx(prior_accuracy)
    assert prior_accuracy >= 0.65


@pytest.mark.parametrize("seed", [1, 2])
def test_when_training_helps_cv_ships_the_trained_model(backbone, seed):
    labeled, test = _task(seed)
    result = train_task(backbone, BLIND, labeled, [], "prompt", {**SCHEDULE, "seed": seed})
    selection = result.metrics["selection"]
    assert selection["choice"] != "prior", selection
    assert selection["cv_accuracy"] > selection["candidates"]["prior"]["cv_accuracy"]
    prior_accuracy = evaluate_accuracy(backbone, _prior(backbone, BLIND), test)
    assert evaluate_accuracy(backbone, result.model, test) >= prior_accuracy + 0.2


def test_the_choice_its_score_and_the_calibration_are_recorded_and_saved(backbone, tmp_path):
    labeled, _ = _task(1)
    result = train_task(backbone, BLIND, labeled, [], "prompt", {**SCHEDULE, "cv_folds": 4})
    selection = result.metrics["selection"]
    assert selection["method"] == "cv" and selection["folds"] == 4
    assert set(selection["candidates"]) == {"prior", "teacher", "blend teacher"}
    for key in ("cv_accuracy", "temperature", "prior_weight", "cv_ece", "cv_seconds"):
        assert key in selection
    assert result.metrics["train_seconds"] >= selection["cv_seconds"]
    directory = save_task_model(result.model, backbone, tmp_path / "cv", result.metrics)
    config = json.loads((directory / "config.json").read_text())
    assert config["calibration"]["choice"] == selection["choice"]
    assert config["calibration"]["temperature"] == selection["temperature"]
    loaded = load_task_model(directory, backbone)
    assert loaded.calibration == result.model.calibration
    assert predict_mixed(backbone, [Row(loaded, t) for t in TEXTS]) == predict_mixed(
        backbone, [Row(result.model, t) for t in TEXTS]
    )


def test_a_head_kind_that_cannot_scale_its_logits_is_refused_before_training(backbone, monkeypatch):
    """A registered kind may leave `scale_logits` out; `cv` then fails at once, naming the
    field, not after every fold has trained."""
    assert all(kind.supports_scaling() for kind in (SimilarityHead, MlmPromptHead, ClassicHead))
    assert SimilarityHead.zero_shot and MlmPromptHead.zero_shot and not ClassicHead.zero_shot
    monkeypatch.setattr(SimilarityHead, "scale_logits", TaskHead.scale_logits)
    assert not SimilarityHead.supports_scaling()
    labeled, _ = _task(1)
    reports = []
    with pytest.raises(FieldError) as caught:
        train_task(backbone, BLIND, labeled, [], "prompt", SCHEDULE, progress=reports.append)
    assert caught.value.field == "hyperparameters.selection", caught.value
    assert "similarity" in caught.value.message
    assert reports == []  # refused before the first step


def test_the_last_checkpoint_is_shipped_uncalibrated_by_default(backbone):
    result = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    assert result.hyperparameters.selection == "last"
    assert "selection" not in result.metrics and result.model.calibration is None


def test_progress_covers_every_fold_run_and_ends_at_the_counted_steps(backbone):
    reports = []
    overrides = {**TINY_STEPS, "selection": "cv", "cv_folds": 3}
    result = train_task(
        backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", overrides, progress=reports.append
    )
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    teacher_phases = {r.phase for r in reports if r.phase.endswith("teacher")}
    assert teacher_phases == {"teacher", "cv 1/3 teacher", "cv 2/3 teacher", "cv 3/3 teacher"}
    steps = [r.trained_steps for r in reports if r.trained_steps is not None]
    assert steps == sorted(steps)
    assert steps[-1] == result.hyperparameters.total_steps("list", len(UNLABELED), len(EXAMPLES))
    assert all(r.eta_seconds is None or r.eta_seconds >= 0 for r in reports)
    # the checkpoints of `list` are candidates: the teacher and each session's student
    assert {"teacher", "session 1", "session 2"} <= set(result.metrics["selection"]["candidates"])


def _blend(backbone, model: TaskModel, spec: TaskSpec, weight: float) -> TaskModel:
    """`model` blended with its spec's prior at `weight` (what `selection` ships for a blend)."""
    prior = TaskModel(backbone, spec, model.method, LinearConfig(), 64, head_kind=model.head_kind)
    model.head.scale_logits(weight)
    prior.head.scale_logits(1.0 - weight)
    model.prior_head = prior.head.requires_grad_(False)
    model.calibration = {"choice": "blend teacher", "temperature": 1.0, "prior_weight": weight}
    return model.eval()


@pytest.fixture(scope="module", params=["tiny_roberta_path", "tiny_bert_path"])
def any_backbone(request):
    return load_backbone(str(request.getfixturevalue(request.param)), "cpu")


@pytest.fixture(scope="module")
def mixed_models(any_backbone):
    """Contrastive tasks of three tuners, a list task from a contrastive teacher, a prompt
    task, a blend of each head kind and a prior-only model."""
    quick = {**TINY_STEPS, "contrastive_iterations": 2, "head_steps": 3, "contrastive_lr": 0.1}
    models = [
        train_task(any_backbone, SENTIMENT, EXAMPLES, [], "contrastive", quick, tuner=t).model
        for t in ("adapter", "lora", "prompt_tuning")
    ]
    teacher = {**quick, "teacher": "contrastive"}
    models.append(train_task(any_backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", teacher).model)
    prompt = train_task(any_backbone, SENTIMENT, EXAMPLES, [], "prompt", TINY_STEPS).model
    blends = [
        _blend(
            any_backbone,
            train_task(any_backbone, SENTIMENT, EXAMPLES, [], m, quick).model,
            SENTIMENT,
            0.6,
        )
        for m in ("contrastive", "prompt")
    ]
    prior = _prior(any_backbone, SENTIMENT)
    return [*models, prompt, *blends, prior]


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_a_mixed_batch_with_contrastive_and_blended_tasks_equals_each_row_alone(
    any_backbone, mixed_models, scripted
):
    served = serving_backbone(any_backbone, scripted=scripted)
    count = len(mixed_models)
    rows = [Row(mixed_models[i % count], TEXTS[i % len(TEXTS)]) for i in range(2 * count + 1)]
    mixed = predict_mixed(served, rows)
    for row, probabilities in zip(rows, mixed, strict=True):
        alone = predict_mixed(served, [row])[0]
        assert probabilities == pytest.approx(alone, abs=1e-5)
        logits = row.model.logits_for_rows(any_backbone, row.model.encode([row.text], [None]))
        assert probabilities == pytest.approx(logits.softmax(-1)[0].tolist(), abs=1e-5)
    assert len({str(p) for p in mixed[:count]}) == count  # no row took another's parameters


def test_a_blend_round_trips_its_prior_head(any_backbone, mixed_models, tmp_path):
    blend = next(m for m in mixed_models if m.prior_head is not None)
    directory = save_task_model(blend, any_backbone, tmp_path / "blend")
    config = json.loads((directory / "config.json").read_text())
    assert config["prior_head_kind"] == blend.prior_head.kind
    loaded = load_task_model(directory, any_backbone)
    assert loaded.prior_head is not None and loaded.calibration == blend.calibration
    original, back = blend.state_dict(), loaded.state_dict()
    assert any(k.startswith("prior_head.") for k in original) and set(original) == set(back)
    assert all(torch.equal(original[k], back[k]) for k in original)
    rows = [Row(loaded, t) for t in TEXTS]
    assert predict_mixed(any_backbone, rows) == predict_mixed(
        any_backbone, [Row(blend, t) for t in TEXTS]
    )
