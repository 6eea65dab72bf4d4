import pytest
import torch

from list_core.adapters import (
    AdapterConfig,
    AdapterSet,
    SingleAdapterPlan,
    adapter_plan,
)
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.prompts import PlainEncoder


def _hidden(backbone, plan):
    rows = PlainEncoder(backbone.tokenizer, 32).encode(["great movie", "dull plot"], [None] * 2)
    batch = collate(rows, backbone.tokenizer.pad_token_id, backbone.device)
    with torch.no_grad(), adapter_plan(plan):
        return backbone.hidden_states(batch.input_ids, batch.attention_mask)


def test_fresh_adapter_starts_as_the_frozen_backbone(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    adapters = AdapterSet(AdapterConfig(), backbone.sites, backbone.hidden_size)
    plain = _hidden(backbone, None)
    adapted = _hidden(backbone, SingleAdapterPlan(adapters))
    assert torch.allclose(plain, adapted, atol=1e-4)
    assert not torch.equal(plain, adapted)


def test_list_adapter_is_linear_with_no_bias_and_houlsby_is_not(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    x = torch.randn(3, backbone.hidden_size)
    linear = AdapterSet(AdapterConfig(init_std=0.5), backbone.sites, backbone.hidden_size)
    key = linear.site_keys[0]
    assert torch.allclose(linear.delta(key, 2 * x), 2 * linear.delta(key, x), atol=1e-5)
    assert torch.equal(linear.delta(key, torch.zeros_like(x)), torch.zeros_like(x))
    houlsby = AdapterSet(
        AdapterConfig(kind="houlsby", init_std=0.5), backbone.sites, backbone.hidden_size
    )
    assert not torch.allclose(houlsby.delta(key, 2 * x), 2 * houlsby.delta(key, x), atol=1e-3)
    assert all(
        name.endswith(("down." + k, "up." + k))
        for k in linear.site_keys
        for name, _ in linear.named_parameters()
        if name.endswith(k)
    )
    assert {p.shape for p in linear.down.values()} == {(backbone.hidden_size, 32)}


def test_placement_and_bottleneck_are_configurable(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    ffn_only = AdapterSet(
        AdapterConfig(bottleneck=4, placement=("ffn",)), backbone.sites, backbone.hidden_size
    )
    assert ffn_only.site_keys == [s.key for s in backbone.sites if s.place == "ffn"]
    assert {tuple(p.shape) for p in ffn_only.up.values()} == {(4, backbone.hidden_size)}
    with pytest.raises(ValueError, match="placement"):
        AdapterConfig(placement=("nowhere",))
    with pytest.raises(ValueError, match="kind"):
        AdapterConfig(kind="lora")


def test_adapters_are_only_active_inside_their_plan(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    adapters = AdapterSet(AdapterConfig(init_std=0.3), backbone.sites, backbone.hidden_size)
    before = _hidden(backbone, None)
    changed = _hidden(backbone, SingleAdapterPlan(adapters))
    after = _hidden(backbone, None)
    assert not torch.allclose(before, changed, atol=1e-3)
    assert torch.equal(before, after)
