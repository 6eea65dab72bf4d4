import json

import pytest
import torch

from list_core.artifact import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterMismatchError,
    load_task_model,
    read_config,
    save_task_model,
)
from list_core.backbone import load_backbone
from list_core.inference import Row, predict_mixed
from list_core.training import train_task

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED


@pytest.fixture(scope="module")
def trained(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    return backbone, train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)


def test_round_trip_is_exact(trained, tmp_path):
    backbone, result = trained
    save_task_model(
        result.model, backbone, tmp_path, result.metrics, result.hyperparameters.as_dict()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [WEIGHTS_FILE, CONFIG_FILE]
    loaded = load_task_model(tmp_path, backbone)
    original = result.model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in loaded.state_dict().items())
    assert set(original) == set(loaded.state_dict())
    texts = ["great fun", "awful plot"]
    assert predict_mixed(backbone, [Row(result.model, t) for t in texts]) == predict_mixed(
        backbone, [Row(loaded, t) for t in texts]
    )
    config = read_config(tmp_path)
    assert config["backbone"]["fingerprint"] == backbone.fingerprint
    assert config["adapter"] == {
        "kind": "list",
        "bottleneck": 8,
        "placement": ["attention", "ffn"],
        "init_std": 2e-4,
        "layers": None,
    }
    assert config["head_kind"] == "mlm" and config["labels"] == ["negative", "positive"]
    assert config["label_words"] == {"negative": "terrible", "positive": "great"}
    assert config["metrics"]["method"] == "list" and "listserve_version" in config


def test_only_adapter_and_head_tensors_are_saved(trained, tmp_path):
    backbone, result = trained
    save_task_model(result.model, backbone, tmp_path)
    from safetensors.torch import load_file

    names = load_file(str(tmp_path / WEIGHTS_FILE))
    assert all(n.startswith(("adapters.", "head.")) for n in names)
    stored = sum(t.numel() for t in names.values())
    assert stored == result.model.trainable_parameters()
    assert stored < sum(p.numel() for p in backbone.encoder.parameters()) / 2


def test_adapter_for_another_backbone_is_refused(trained, tiny_bert_path, tmp_path):
    backbone, result = trained
    save_task_model(result.model, backbone, tmp_path)
    other = load_backbone(str(tiny_bert_path), "cpu")
    with pytest.raises(AdapterMismatchError, match="trained on backbone"):
        load_task_model(tmp_path, other)


def test_pickle_and_missing_weights_are_refused(trained, tmp_path):
    backbone, result = trained
    save_task_model(result.model, backbone, tmp_path)
    torch.save(result.model.state_dict(), tmp_path / WEIGHTS_FILE)
    with pytest.raises(AdapterMismatchError, match="not a valid safetensors"):
        load_task_model(tmp_path, backbone)
    (tmp_path / WEIGHTS_FILE).unlink()
    torch.save(result.model.state_dict(), tmp_path / "adapter.bin")
    with pytest.raises(AdapterMismatchError, match="only safetensors"):
        load_task_model(tmp_path, backbone)


def test_tampered_config_is_refused(trained, tmp_path):
    backbone, result = trained
    save_task_model(result.model, backbone, tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["method"] = "classic"
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(AdapterMismatchError, match="tensor names do not match"):
        load_task_model(tmp_path, backbone)
