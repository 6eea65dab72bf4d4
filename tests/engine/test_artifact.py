import itertools
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
import torch
from safetensors import deserialize
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_safetensors

from list_core.adapters import AdapterConfig
from list_core.artifact import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterMismatchError,
    _packed,
    load_task_model,
    read_config,
    save_task_model,
)
from list_core.backbone import Backbone, load_backbone
from list_core.inference import Row, predict_mixed
from list_core.task_model import TaskModel
from list_core.training import train_task
from tests.c_calls import c_calls
from tests.tiny_models import build_tiny_bert

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED


@pytest.fixture(scope="module")
def trained(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    return backbone, train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)


@pytest.fixture(scope="module")
def headless(tmp_path_factory) -> Backbone:
    """An encoder without an MLM head: prompt methods use the similarity head."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("headless-bert"), mlm_head=False)
    return load_backbone(str(folder), "cpu")


@contextmanager
def counted_forwards(backbone: Backbone) -> Iterator[list[int]]:
    """Counts forwards of the shared encoder while the block runs."""
    calls: list[int] = []
    handle = backbone.encoder.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def assert_one_buffer(tensors: Iterable[torch.Tensor]) -> None:
    """The tensors tile one span of memory, side by side with no gaps."""
    spans = sorted((t.data_ptr(), t.data_ptr() + t.nbytes) for t in tensors if t.nbytes)
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans)), spans


@pytest.mark.parametrize("method", ["prompt", "classic"])
@pytest.mark.parametrize("encoder", ["mlm", "headless"])
def test_load_is_exact_and_runs_no_backbone_forward(
    trained, headless, tmp_path, method: str, encoder: str
):
    backbone = trained[0] if encoder == "mlm" else headless
    generator = torch.Generator().manual_seed(3)
    with counted_forwards(backbone) as built_calls:
        model = TaskModel(backbone, SENTIMENT, method, AdapterConfig(bottleneck=4), 32, generator)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))
    save_task_model(model, backbone, tmp_path)
    with counted_forwards(backbone) as load_calls:
        loaded = load_task_model(tmp_path, backbone)
    assert load_calls == []
    uses_label_embeddings = encoder == "headless" and method == "prompt"
    assert len(built_calls) == (1 if uses_label_embeddings else 0)  # the counter does count
    assert loaded.head_kind == model.head_kind
    saved, restored = model.state_dict(), loaded.state_dict()
    assert set(saved) == set(restored)
    assert all(torch.equal(saved[name], restored[name]) for name in saved)
    assert not any(parameter.requires_grad for parameter in loaded.parameters())
    assert_one_buffer(restored.values())  # one allocation per model, released whole on eviction
    if loaded.head_kind == "mlm":
        assert loaded.head.layer_norm.eps == backbone.mlm_head.layer_norm.eps
    texts = ["great fun", "awful plot"]
    assert predict_mixed(backbone, [Row(loaded, t) for t in texts]) == predict_mixed(
        backbone, [Row(model.eval(), t) for t in texts]
    )


# Torch calls a load may make: wrapping its one buffer (shaped by numpy) and bookkeeping that
# keeps the GIL. Allocations, copies, views, detach or requires_grad_ each release the GIL and,
# in a busy server, wait up to a switch interval to get it back.
LOAD_TORCH_CALLS = {
    "from_numpy",
    "_make_subclass",
    "is_grad_enabled",
    "_set_grad_enabled",
    "_log_api_usage_once",
    "__instancecheck__",
}


@pytest.mark.parametrize("method", ["prompt", "classic"])
def test_load_only_wraps_its_buffer(trained, tmp_path, method: str):
    backbone = trained[0]
    model = TaskModel(backbone, SENTIMENT, method, AdapterConfig(bottleneck=4), 32)
    save_task_model(model, backbone, tmp_path)
    load_task_model(tmp_path, backbone)  # first load: one-off lazy imports and caches
    calls = c_calls(lambda: load_task_model(tmp_path, backbone))
    called = {name for module, name in calls if module.startswith("torch")}
    assert "from_numpy" in called  # the recorder sees torch functions
    assert called <= LOAD_TORCH_CALLS, called - LOAD_TORCH_CALLS


def test_packed_tensors_keep_every_dtype_shape_and_value():
    """bf16 (which numpy lacks), integers, bools and 0-d tensors, in one aligned buffer."""
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "a.weight": torch.randn(3, 5, generator=generator),
        "b.weight": torch.randn(3, 5, generator=generator),
        "c.half": torch.randn(7, generator=generator).to(torch.bfloat16),
        "d.ids": torch.arange(6, dtype=torch.int64).view(2, 3),
        "e.flags": torch.tensor([True, False, True]),
        "f.scale": torch.tensor(2.5),
        "g.bytes": torch.arange(5, dtype=torch.uint8),
        "h.empty": torch.zeros(0, 4),
    }
    packed = _packed(deserialize(save_safetensors(tensors)), torch.device("cpu"))
    assert set(packed) == set(tensors)
    for name, tensor in tensors.items():
        assert packed[name].dtype == tensor.dtype and packed[name].shape == tensor.shape, name
        assert torch.equal(packed[name], tensor), name
    assert_one_buffer(packed.values())
    assert all(t.data_ptr() % t.element_size() == 0 for t in packed.values())


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


def test_weights_of_the_wrong_shape_or_dtype_are_refused(trained, tmp_path):
    """Names that match but shapes or dtypes that do not (a config edited to another
    bottleneck, or weights re-saved in half precision) are refused naming the tensor."""
    backbone, result = trained
    save_task_model(result.model, backbone, tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["adapter"]["bottleneck"] += 1
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(AdapterMismatchError, match=r"adapters\.(down|up)\.layer"):
        load_task_model(tmp_path, backbone)
    save_task_model(result.model, backbone, tmp_path)
    tensors = load_file(tmp_path / WEIGHTS_FILE)
    save_file({name: t.half() for name, t in tensors.items()}, tmp_path / WEIGHTS_FILE)
    with pytest.raises(AdapterMismatchError, match=r"torch\.float16"):
        load_task_model(tmp_path, backbone)
