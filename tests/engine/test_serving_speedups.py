"""The serving twin: int8/bf16/compiled encoders give the fp32 answers and leave training alone."""

import copy

import pytest
import torch
from torch import nn

from list_core.adapters import SingleAdapterPlan, adapter_plan
from list_core.backbone import load_backbone
from list_core.inference import Row, predict_mixed
from list_core.serving.speedups import resolve_precision, serving_backbone
from tests.engine.test_inference import TEXTS, _models


@pytest.fixture(scope="module")
def backbone(tiny_bert_path):
    return load_backbone(str(tiny_bert_path), "cpu")


def _rows(models) -> list[Row]:
    return [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]


def _max_gap(left: list[list[float]], right: list[list[float]]) -> float:
    pairs = zip(left, right, strict=True)
    return max(abs(a - b) for pl, pr in pairs for a, b in zip(pl, pr, strict=True))


def test_fp32_without_compile_is_the_backbone_itself(backbone) -> None:
    assert serving_backbone(backbone) is backbone


@pytest.mark.device
@pytest.mark.parametrize("precision", ["int8", "bf16"])
@pytest.mark.parametrize("mode", ["gather", "group"])
def test_reduced_precision_twin_gives_the_fp32_predictions(
    tiny_bert_path, device, precision, mode
) -> None:
    if precision == "int8" and device != "cpu":
        pytest.skip("int8 dynamic quantisation runs on a CPU only")
    backbone = load_backbone(str(tiny_bert_path), device)
    twin = serving_backbone(backbone, precision)
    models = _models(backbone)
    rows = _rows(models)
    reference = predict_mixed(backbone, rows, apply_mode=mode)
    served = predict_mixed(twin, rows, apply_mode=mode)
    assert twin.fingerprint == backbone.fingerprint
    assert twin.describe()["serving_precision"] == precision
    assert 0 < _max_gap(reference, served) < 0.03
    assert all(p.dtype == torch.float32 for m in models for p in m.adapters.parameters())


def test_int8_twin_quantises_only_its_own_linears_and_shares_the_rest(backbone) -> None:
    twin = serving_backbone(backbone, "int8")
    quantised = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, quantised) for m in twin.encoder.modules())
    assert not any(isinstance(m, nn.Linear) for m in twin.encoder.modules())
    assert not any(isinstance(m, quantised) for m in backbone.encoder.modules())
    shared = backbone.encoder.embeddings.word_embeddings.weight
    assert twin.encoder.embeddings.word_embeddings.weight is shared


def test_training_still_backpropagates_through_the_original_after_a_twin(backbone) -> None:
    serving_backbone(backbone, "int8")
    model = _models(backbone)[0]
    model.train()
    ids = backbone.tokenizer(["a great film"], return_tensors="pt")
    with adapter_plan(SingleAdapterPlan(model.adapters)):
        hidden = backbone.hidden_states(ids["input_ids"], ids["attention_mask"])
    (hidden * torch.randn_like(hidden)).sum().backward()
    first_site = model.adapters.site_keys[0]
    assert model.adapters.down[first_site].grad is not None
    assert model.adapters.down[first_site].grad.abs().sum() > 0


def test_compiled_twin_gives_the_eager_predictions(backbone) -> None:
    twin = serving_backbone(backbone, "fp32", compile=True)
    models = _models(backbone)
    rows = _rows(models)
    assert twin.encoder is not backbone.encoder
    assert twin.describe()["serving_compiled"] is True
    assert _max_gap(predict_mixed(backbone, rows), predict_mixed(twin, rows)) < 1e-4


def test_int8_refuses_a_cuda_backbone_and_unknown_precisions_are_named(backbone) -> None:
    on_cuda = copy.copy(backbone)
    on_cuda.device = torch.device("cuda")
    with pytest.raises(ValueError, match="int8 runs on CPU only"):
        serving_backbone(on_cuda, "int8")
    with pytest.raises(ValueError, match="serving precision must be one of"):
        serving_backbone(backbone, "fp8")


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")],
)
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(
    backbone, monkeypatch, avx512_bf16, amx, expected
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", backbone.device) == expected
    twin = serving_backbone(backbone, "auto", scripted=True)
    assert twin.describe()["serving_precision"] == expected
    assert twin.describe()["serving_forward"] == "scripted"


def test_auto_precision_stays_fp32_on_a_cpu_without_the_scripted_forward(
    backbone, monkeypatch
) -> None:
    """The eager forward meets a new Linear shape with almost every batch, and oneDNN's bf16
    state per shape would grow without end (`list_core.serving.bucketing.linear_rows`)."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", backbone.device, scripted=False) == "fp32"
    for twin in (
        serving_backbone(backbone, "auto"),
        serving_backbone(backbone, "auto", compile=True, scripted=True),
    ):
        assert twin.describe()["serving_precision"] == "fp32"


def test_explicit_precisions_pass_through_and_auto_is_named_among_the_choices(backbone) -> None:
    for precision in ("fp32", "int8", "bf16"):
        assert resolve_precision(precision, backbone.device) == precision
    with pytest.raises(ValueError, match="'auto', 'fp32', 'int8', 'bf16'"):
        resolve_precision("fp16", backbone.device)


@pytest.mark.parametrize(("supported", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cuda_follows_the_gpus_bf16_support(
    monkeypatch, supported, expected
) -> None:
    """On a GPU every forward may run bf16 (no per-shape state grows), scripted or not."""
    asked: list[bool] = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return supported

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda, scripted=False) == expected
    assert asked == [False]  # emulated bf16 is slower than fp32: only native support counts
