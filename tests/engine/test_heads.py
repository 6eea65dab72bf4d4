"""The head seam: a kind the library does not ship, registered in one place, is built, saved,
loaded and scored in mixed batches beside the built-in kinds, with nothing else changed."""

from typing import Self

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from list_core.adapters import AdapterConfig
from list_core.artifact import load_task_model, read_config, save_task_model
from list_core.backbone import Backbone, load_backbone
from list_core.heads.base import TaskHead, mean_pool
from list_core.heads.registry import HEAD_TYPES, METHOD_HEAD_KINDS, head_kind_for
from list_core.inference import Row, predict_mixed
from list_core.placeholders import placeholder_linear
from list_core.prompts import TaskSpec
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from tests.engine.test_inference import TEXTS
from tests.tiny_models import build_tiny_bert

TWO = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
THREE = TaskSpec.create(["bad", "okay", "good"])


class MlpHead(TaskHead):
    """Two Linear layers over the mean-pooled text: a real head of a kind only this test has."""

    kind = "test-mlp"
    width = 8

    def __init__(
        self, hidden_size: int, num_labels: int, generator: torch.Generator | None
    ) -> None:
        super().__init__()
        self.inner = nn.Linear(hidden_size, self.width)
        self.outer = nn.Linear(self.width, num_labels)
        for linear in (self.inner, self.outer):  # far from uniform, so a mix-up would show
            nn.init.normal_(linear.weight, 0.0, 0.5, generator=generator)
            nn.init.normal_(linear.bias, 0.0, 0.5, generator=generator)

    @classmethod
    def build(
        cls, backbone: Backbone, spec: TaskSpec, max_length: int, generator: torch.Generator | None
    ) -> Self:
        return cls(backbone.hidden_size, len(spec.labels), generator)

    @classmethod
    def stand_in(cls, backbone: Backbone, spec: TaskSpec, max_length: int) -> Self:
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.inner = placeholder_linear(backbone.hidden_size, cls.width)
        head.outer = placeholder_linear(cls.width, len(spec.labels))
        return head

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        return self.outer(F.gelu(self.inner(mean_pool(hidden, attention_mask))))


@pytest.fixture(params=["mlm", "headless"])
def backbone(request, tiny_roberta_path, tmp_path_factory) -> Backbone:
    """An encoder with an MLM head (prompt tasks get MLM heads) and one without (similarity
    heads)."""
    if request.param == "mlm":
        return load_backbone(str(tiny_roberta_path), "cpu")
    folder = build_tiny_bert(tmp_path_factory.mktemp("headless-bert"), mlm_head=False)
    return load_backbone(str(folder), "cpu")


def _built_in_models(backbone: Backbone) -> list[TaskModel]:
    """A prompt head per label count (two tasks with two labels, so the similarity heads are
    batched) and a classic head."""
    generator = torch.Generator().manual_seed(7)
    config = AdapterConfig(bottleneck=8, init_std=0.2)
    tasks = [(TWO, "prompt"), (TWO, "list"), (THREE, "prompt"), (TWO, "classic")]
    return [
        TaskModel(backbone, spec, method, config, 64, generator).eval() for spec, method in tasks
    ]


def test_a_registered_head_kind_is_built_saved_loaded_and_scored_beside_the_built_in_ones(
    backbone, tmp_path, monkeypatch
) -> None:
    built_in = _built_in_models(backbone)
    assert {model.head_kind for model in built_in} == {backbone.prompt_head_kind, "classic"}
    monkeypatch.setitem(HEAD_TYPES, MlpHead.kind, MlpHead)
    monkeypatch.setitem(METHOD_HEAD_KINDS, "classic", MlpHead.kind)
    assert head_kind_for("classic", backbone) == MlpHead.kind
    generator = torch.Generator().manual_seed(8)
    config = AdapterConfig(bottleneck=8, init_std=0.2)
    mlp = [
        TaskModel(backbone, spec, "classic", config, 64, generator).eval() for spec in (TWO, THREE)
    ]
    assert all(isinstance(model.head, MlpHead) for model in mlp)

    save_task_model(mlp[1], backbone, tmp_path)
    assert read_config(tmp_path)["head_kind"] == MlpHead.kind
    loaded = load_task_model(tmp_path, backbone)
    assert isinstance(loaded.head, MlpHead)
    saved, restored = mlp[1].state_dict(), loaded.state_dict()
    assert set(saved) == set(restored)
    assert all(torch.equal(saved[name], restored[name]) for name in saved)

    asked: list[int] = []
    score_groups = MlpHead.score_groups

    def spy(cls, heads, row_groups, hidden, batch, mask_index):
        asked.append(len(heads))
        return score_groups(heads, row_groups, hidden, batch, mask_index)

    monkeypatch.setattr(MlpHead, "score_groups", classmethod(spy))
    models = [*built_in, *mlp, loaded]
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    mixed = predict_mixed(backbone, rows)
    assert asked == [3]  # the new kind's three tasks, asked of its class in one call
    for row, probs in zip(rows, mixed, strict=True):
        assert len(probs) == len(row.model.spec.labels)
        assert probs == pytest.approx(predict_mixed(backbone, [row])[0], abs=1e-5)
    assert len({tuple(round(p, 4) for p in probs) for probs in mixed}) > len(models)
    as_saved = predict_mixed(backbone, [Row(mlp[1], text) for text in TEXTS])
    assert predict_mixed(backbone, [Row(loaded, text) for text in TEXTS]) == as_saved
    served = serving_backbone(backbone, scripted=True)
    assert served.scripted is not None
    for got, want in zip(predict_mixed(served, rows, "group"), mixed, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
