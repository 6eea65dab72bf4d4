import pytest
import torch

from list_core import backbone as backbone_module
from list_core.backbone import load_backbone
from list_core.device import resolve_device


def test_tiny_roberta_and_bert_load_frozen_with_mlm_head(tiny_roberta_path, tiny_bert_path):
    for path, architecture in ((tiny_roberta_path, "RobertaModel"), (tiny_bert_path, "BertModel")):
        backbone = load_backbone(str(path), "cpu")
        assert backbone.describe()["architecture"] == architecture
        assert backbone.has_mlm_head and backbone.prompt_head_kind == "mlm"
        assert not backbone.encoder.training
        assert all(not p.requires_grad for p in backbone.encoder.parameters())
        assert {site.place for site in backbone.sites} == {"attention", "ffn"}
        assert len(backbone.sites) == 2 * backbone.encoder.config.num_hidden_layers


def test_backbone_is_loaded_once_per_process(tiny_roberta_path):
    assert load_backbone(str(tiny_roberta_path), "cpu") is load_backbone(
        str(tiny_roberta_path), "cpu"
    )


def test_encoder_without_mlm_head_uses_similarity_head(tmp_path):
    from tests.tiny_models import build_tiny_bert

    backbone = load_backbone(str(build_tiny_bert(tmp_path / "enc", mlm_head=False)), "cpu")
    assert not backbone.has_mlm_head
    assert backbone.prompt_head_kind == "similarity"


def test_fingerprint_is_stable_across_loads_and_differs_between_models(
    tiny_roberta_path, tiny_bert_path
):
    first = load_backbone(str(tiny_roberta_path), "cpu").fingerprint
    backbone_module._cache.clear()
    again = load_backbone(str(tiny_roberta_path), "cpu")
    assert again.fingerprint == first
    assert (
        load_backbone(str(tiny_bert_path), "cpu").fingerprint.split("@")[1] != first.split("@")[1]
    )


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_missing_backbone_fails_clearly(tmp_path):
    with pytest.raises(OSError):
        load_backbone(str(tmp_path / "does-not-exist"), "cpu")
