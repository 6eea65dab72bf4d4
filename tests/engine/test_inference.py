import pytest
import torch
from torch import nn
from transformers.activations import GELUActivation

from list_core.adapters import AdapterConfig
from list_core.backbone import load_backbone
from list_core.heads.base import TaskHead
from list_core.heads.classic import ClassicHead
from list_core.heads.mlm import MlmPromptHead, exact_gelu
from list_core.inference import Row, encode_rows, predict_mixed
from list_core.prompts import PlainEncoder, PromptEncoder, TaskSpec
from list_core.task_model import TaskModel

TEXTS = [
    "great fun movie",
    "the plot was dull and boring",
    "nice",
    "a superb cast with music",
    "awful",
    "it was okay I guess",
    "the ending",
    "lovely lovely lovely film",
]


def _models(backbone):
    torch.manual_seed(3)
    sentiment = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    three_way = TaskSpec.create(["bad", "okay", "good"], "Review: {text} All in all {mask} !")
    models = [
        TaskModel(backbone, sentiment, "prompt", AdapterConfig(bottleneck=8, init_std=0.2), 64),
        TaskModel(backbone, three_way, "list", AdapterConfig(bottleneck=4, init_std=0.2), 64),
        TaskModel(backbone, sentiment, "classic", AdapterConfig(bottleneck=8, init_std=0.2), 64),
        TaskModel(
            backbone,
            sentiment,
            "prompt",
            AdapterConfig(kind="houlsby", bottleneck=8, init_std=0.2),
            64,
        ),
        TaskModel(
            backbone,
            sentiment,
            "prompt",
            AdapterConfig(bottleneck=8, init_std=0.2, placement=("ffn",)),
            64,
        ),
    ]
    for model in models:
        model.eval()
    return models


@pytest.mark.device
@pytest.mark.parametrize("mode", ["gather", "group"])
@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "tiny_bert_path"])
def test_mixed_batch_matches_each_row_alone(fixture, mode, request, device):
    backbone = load_backbone(str(request.getfixturevalue(fixture)), device)
    models = _models(backbone)
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    mixed = predict_mixed(backbone, rows, apply_mode=mode)
    for row, probs in zip(rows, mixed, strict=True):
        alone = predict_mixed(backbone, [row])[0]
        assert len(probs) == len(row.model.spec.labels)
        assert probs == pytest.approx(alone, abs=1e-5)
    distinct = {tuple(round(p, 4) for p in probs) for probs in mixed}
    assert len(distinct) > len(models)


def test_each_model_in_a_mixed_batch_gets_its_own_adapter(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    first, _, _, _, _ = _models(backbone)
    twin = TaskModel(
        backbone, first.spec, "prompt", AdapterConfig(bottleneck=8, init_std=0.2), 64
    ).eval()
    text = "a superb cast with music"
    probs = predict_mixed(backbone, [Row(first, text), Row(twin, text)])
    assert probs[0] != pytest.approx(probs[1], abs=1e-4)


def test_empty_batch_and_bad_mode(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    assert predict_mixed(backbone, []) == []
    models = _models(backbone)
    with pytest.raises(ValueError, match="apply mode"):
        predict_mixed(backbone, [Row(models[0], "x"), Row(models[1], "y")], apply_mode="magic")


@pytest.mark.device
def test_similarity_heads_scored_together_match_each_row_alone(minilm_path, device):
    """Without an MLM head every prompt task has a similarity head, and the heads of a batch
    are scored in one batched call; a three-label task and a classic head join the batch."""
    backbone = load_backbone(str(minilm_path), device)
    torch.manual_seed(5)
    two = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    three = TaskSpec.create(["bad", "okay", "good"])
    config = AdapterConfig(bottleneck=8, init_std=0.2)
    models = [
        TaskModel(backbone, two, "prompt", config, 64),
        TaskModel(backbone, two, "list", config, 64),
        TaskModel(backbone, three, "prompt", config, 64),
        TaskModel(backbone, two, "classic", config, 64),
    ]
    for model in models:
        model.eval()
    with torch.no_grad():
        models[1].head.log_scale.add_(1.0)  # heads differ in temperature too
    assert [m.head_kind for m in models] == ["similarity", "similarity", "similarity", "classic"]
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    mixed = predict_mixed(backbone, rows)
    for row, probs in zip(rows, mixed, strict=True):
        assert probs == pytest.approx(predict_mixed(backbone, [row])[0], abs=1e-5)
    same_text = predict_mixed(backbone, [Row(models[0], TEXTS[0]), Row(models[1], TEXTS[0])])
    assert same_text[0] != pytest.approx(same_text[1], abs=1e-3)  # a mix-up would show


def test_tasks_that_encode_alike_share_one_tokenizer_call(tiny_roberta_path, monkeypatch):
    """Rows are encoded per distinct encoding, not per task: two tasks on the default template
    share a call, a task with its own template gets its own, and every row still comes out
    exactly as its own task encodes it alone."""
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    words = {"neg": "terrible", "pos": "great"}
    default = TaskSpec.create(["neg", "pos"], label_words=words)
    own = TaskSpec.create(["neg", "pos"], "Review: {text} All in all {mask} !", label_words=words)
    config = AdapterConfig(bottleneck=4)
    models = [
        TaskModel(backbone, default, "prompt", config, 64),
        TaskModel(backbone, default, "list", config, 64),
        TaskModel(backbone, own, "prompt", config, 64),
        TaskModel(backbone, default, "classic", config, 64),
        TaskModel(backbone, default, "classic", config, 64),
    ]
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    alone = [row.model.encode([row.text], [row.text_b])[0] for row in rows]
    calls: list[int] = []
    for encoder in (PromptEncoder, PlainEncoder):
        original = encoder.encode

        def counted(self, texts, texts_b, original=original):
            calls.append(len(texts))
            return original(self, texts, texts_b)

        monkeypatch.setattr(encoder, "encode", counted)
    assert encode_rows(rows) == alone
    # 16 rows over 5 tasks: the own template (model 2: 3 rows), classic heads (3, 4: 3 + 3),
    # default-template prompts (0, 1: 4 + 3)
    assert sorted(calls) == [3, 6, 7]


def _perturbed_mlm_models(backbone) -> list[TaskModel]:
    """MLM prompt tasks whose heads differ in every weight (as after training), with two label
    counts and two templates."""
    models = [model for model in _models(backbone) if model.head_kind == "mlm"]
    with torch.no_grad():
        for number, model in enumerate(models):
            for tensor in model.head.parameters():
                tensor.add_(0.05 * (number + 1) * torch.randn_like(tensor))
    return models


def _assert_scored_in_one_call(backbone, rows, head_type, own_forward, monkeypatch) -> None:
    """Scored with every `head_type` forward refused, each row gets what its own head's
    forward gave (`own_forward`), and the tasks' answers differ, so a mix-up would show."""

    def refuse(*args, **kwargs):
        raise AssertionError("a head's own forward ran")

    monkeypatch.setattr(head_type, "forward", refuse)
    together = predict_mixed(backbone, rows)
    for got, want in zip(together, own_forward, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    tasks = {id(row.model) for row in rows}
    assert len({tuple(round(p, 4) for p in probs) for probs in together}) > len(tasks)


@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "tiny_bert_path"])
def test_mlm_heads_scored_in_one_call_equal_each_heads_own_forward(fixture, request, monkeypatch):
    """Every MLM prompt head of a batch is scored by one scripted call (each head's forward is
    never run), and each row gets what its own head's forward gives."""
    backbone = load_backbone(str(request.getfixturevalue(fixture)), "cpu")
    models = _perturbed_mlm_models(backbone)
    assert len({len(model.spec.labels) for model in models}) == 2
    assert all(model.head.batchable for model in models)
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    with monkeypatch.context() as patched:
        patched.setattr(MlmPromptHead, "batchable", property(lambda head: False))
        own_forward = predict_mixed(backbone, rows)
    _assert_scored_in_one_call(backbone, rows, MlmPromptHead, own_forward, monkeypatch)


def test_an_mlm_head_with_another_activation_keeps_its_own_forward(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    models = _perturbed_mlm_models(backbone)
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS)]
    exact = predict_mixed(backbone, rows)
    models[0].head.activation = nn.GELU(approximate="tanh")
    assert not models[0].head.batchable and models[1].head.batchable
    mixed = predict_mixed(backbone, rows)
    for row, got, before in zip(rows, mixed, exact, strict=True):
        assert got == pytest.approx(predict_mixed(backbone, [row])[0], abs=1e-6)
        if row.model is not models[0]:
            assert got == pytest.approx(before, abs=1e-6)
    changed = [
        got != pytest.approx(before, abs=1e-7) for got, before in zip(mixed, exact, strict=True)
    ]
    assert any(changed)  # the tanh GELU really was applied, by the head's own forward


def test_exact_gelu_is_the_erf_gelu_only() -> None:
    assert exact_gelu(nn.GELU()) and exact_gelu(GELUActivation())
    assert not exact_gelu(nn.GELU(approximate="tanh"))
    assert not exact_gelu(GELUActivation(use_gelu_python=True))
    assert not exact_gelu(nn.ReLU())


@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "minilm_path"])
def test_classic_heads_scored_in_one_call_equal_each_heads_own_forward(
    fixture, request, monkeypatch
):
    backbone = load_backbone(str(request.getfixturevalue(fixture)), "cpu")
    torch.manual_seed(9)
    two = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    three = TaskSpec.create(["bad", "okay", "good"])
    config = AdapterConfig(bottleneck=8, init_std=0.2)
    models = [TaskModel(backbone, spec, "classic", config, 64).eval() for spec in (two, three, two)]
    with torch.no_grad():
        for number, model in enumerate(models):
            model.head.linear.weight.add_(
                0.5 * (number + 1) * torch.randn_like(model.head.linear.weight)
            )
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    with monkeypatch.context() as patched:
        patched.setattr(ClassicHead, "score_groups", TaskHead.score_groups)
        own_forward = predict_mixed(backbone, rows)
    _assert_scored_in_one_call(backbone, rows, ClassicHead, own_forward, monkeypatch)
