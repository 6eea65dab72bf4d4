"""The scripted serving forward computes what the eager encoder with per-row adapters computes."""

import pytest
import torch

from list_core.adapters import AdapterConfig, MixedAdapterPlan, adapter_plan
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.inference import Row, encode_rows, forward_encoded, predict_mixed
from list_core.prompts import TaskSpec
from list_core.serving import bucketing, capabilities
from list_core.serving.bucketing import attention_buckets
from list_core.serving.scripted import ScriptedEncoder, script_encoder
from list_core.serving.speedups import serving_backbone
from list_core.task_model import TaskModel
from tests.engine.test_inference import TEXTS, _models

BACKBONES = ["tiny_roberta_path", "tiny_bert_path", "minilm_path"]


@pytest.fixture(params=BACKBONES)
def backbone(request):
    return load_backbone(str(request.getfixturevalue(request.param)), "cpu")


def _same_shape_models(backbone, count: int, **config) -> list[TaskModel]:
    spec = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    generator = torch.Generator().manual_seed(11)
    adapter_config = AdapterConfig(bottleneck=8, init_std=0.2, **config)
    return [
        TaskModel(backbone, spec, "prompt", adapter_config, 64, generator=generator).eval()
        for _ in range(count)
    ]


def _both_forwards(
    backbone, rows: list[Row], mode: str = "gather"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eager, scripted, real-token mask) hidden states for one padded batch."""
    batch = collate(encode_rows(rows), backbone.tokenizer.pad_token_id, backbone.device)
    adapters = [row.model.adapters for row in rows]
    scripted = script_encoder(backbone.encoder, backbone.sites)
    with torch.no_grad():
        with adapter_plan(MixedAdapterPlan(adapters)):
            eager = backbone.hidden_states(batch.input_ids, batch.attention_mask)
        packed = scripted.pack(adapters, batch.lengths, mode)
        fast = scripted(batch.input_ids, batch.attention_mask, packed, batch.lengths)
    return eager, fast, batch.attention_mask.bool()


@pytest.mark.parametrize("mode", ["gather", "group"])
@pytest.mark.parametrize("distinct", [1, 3])
@pytest.mark.parametrize(
    "config",
    [{}, {"kind": "houlsby"}, {"placement": ("ffn",)}, {"layers": (0,)}],
    ids=["list", "houlsby", "ffn-only", "first-layer-only"],
)
@pytest.mark.parametrize("bucketed", [False, True], ids=["one-bucket", "bucketed"])
def test_hidden_states_equal_the_eager_forward(
    backbone, distinct, config, mode, bucketed, monkeypatch
) -> None:
    """Rows of the adapters interleave, so `group` must reorder them (inside each attention
    bucket) and put them back. With cheaper buckets attention runs in several buckets of rows,
    each padded to its own longest, and some hold rows of several adapters."""
    models = _same_shape_models(backbone, distinct, **config)
    rows = [Row(models[i % distinct], text) for i, text in enumerate(TEXTS)]
    if bucketed:
        lengths = [len(row.input_ids) for row in encode_rows(rows)]
        for cost in (400, 200, 100, 50, 25):
            monkeypatch.setattr(bucketing, "BUCKET_COST", cost)
            buckets = attention_buckets(lengths)
            if len(buckets) > 1 and max(buckets) > 1:
                break
        assert len(buckets) > 1 and max(buckets) > 1
    eager, fast, real = _both_forwards(backbone, rows, mode)
    assert real.sum() < real.numel()  # the batch really is padded
    assert torch.allclose(fast[real], eager[real], atol=1e-4, rtol=0)  # float32 reordering
    assert (fast[~real] == 0).all()  # padding never reaches the Linear layers


@pytest.mark.parametrize("mode", ["gather", "group"])
@pytest.mark.parametrize("distinct", [1, 3])
@pytest.mark.parametrize("bucketed", [False, True], ids=["one-bucket", "bucketed"])
def test_picked_outputs_equal_the_eager_forward_at_those_tokens(
    backbone, distinct, mode, bucketed, monkeypatch
) -> None:
    """Asked for one token per row (as an MLM head reads the mask token), the last layer runs
    on those tokens alone: each equals the eager forward there, in the caller's row order,
    also when `group` reorders rows and attention runs in several buckets; every other
    position is zero."""
    if bucketed:
        monkeypatch.setattr(bucketing, "BUCKET_COST", 25)
    models = _same_shape_models(backbone, distinct)
    rows = [Row(models[i % distinct], text) for i, text in enumerate(TEXTS)]
    batch = collate(encode_rows(rows), backbone.tokenizer.pad_token_id, backbone.device)
    assert (len(attention_buckets(batch.lengths)) > 1) == bucketed
    adapters = [row.model.adapters for row in rows]
    scripted = script_encoder(backbone.encoder, backbone.sites)
    outputs = [(7 * row) % length for row, length in enumerate(batch.lengths)]
    assert len(set(outputs)) > 1
    with torch.no_grad():
        with adapter_plan(MixedAdapterPlan(adapters)):
            eager = backbone.hidden_states(batch.input_ids, batch.attention_mask)
        packed = scripted.pack(adapters, batch.lengths, mode)
        picked = scripted(batch.input_ids, batch.attention_mask, packed, outputs=outputs)
    at = (torch.arange(len(rows)), torch.tensor(outputs))
    assert torch.allclose(picked[at], eager[at], atol=1e-4, rtol=0)
    picked[at] = 0
    assert (picked == 0).all()


def test_an_output_position_outside_its_row_is_refused(tiny_roberta_path) -> None:
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    scripted = script_encoder(backbone.encoder, backbone.sites)
    models = _same_shape_models(backbone, 1)
    rows = [Row(models[0], text) for text in TEXTS[:2]]
    batch = collate(encode_rows(rows), backbone.tokenizer.pad_token_id, backbone.device)
    packed = scripted.pack([row.model.adapters for row in rows], batch.lengths)
    with pytest.raises(ValueError, match="outside a row"):
        scripted(batch.input_ids, batch.attention_mask, packed, outputs=[0, batch.lengths[1]])


def test_mlm_batches_ask_the_scripted_forward_for_their_mask_tokens_only(
    tiny_roberta_path, monkeypatch
) -> None:
    """A batch whose heads all read the mask token gets the mask positions passed down (and
    answers as the eager forward does); one head that pools over every token keeps the full
    last layer for the whole batch."""
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    served = serving_backbone(backbone, scripted=True)
    asked: list = []
    call = ScriptedEncoder.__call__

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("outputs"))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(ScriptedEncoder, "__call__", spy)
    mlm = _same_shape_models(backbone, 2)
    pooled = [model for model in _models(backbone) if model.head_kind == "classic"]
    assert {model.head_kind for model in mlm} == {"mlm"}
    assert pooled[0].adapter_config.bottleneck == mlm[0].adapter_config.bottleneck
    rows = [Row(mlm[i % 2], text) for i, text in enumerate(TEXTS)]
    encoded = encode_rows(rows)
    for mode in ("gather", "group"):
        got = predict_mixed(served, rows, apply_mode=mode)
        assert asked[-1] == [row.mask_index for row in encoded]
        for got_row, want in zip(got, predict_mixed(backbone, rows), strict=True):
            assert got_row == pytest.approx(want, abs=1e-5)
    predict_mixed(served, [*rows, Row(pooled[0], TEXTS[0])])
    assert asked[-1] is None


@pytest.mark.parametrize("mode", ["gather", "group"])
def test_rows_with_different_adapters_really_differ(backbone, mode) -> None:
    """Guards the test above: with a wrong row-to-adapter mapping it would still pass if every
    adapter gave the same output."""
    models = _same_shape_models(backbone, 2)
    text = TEXTS[0]
    rows = [Row(models[1], text), Row(models[0], text), Row(models[1], text)]
    _, fast, _ = _both_forwards(backbone, rows, mode)
    assert not torch.allclose(fast[0], fast[1], atol=1e-4)
    assert torch.allclose(fast[0], fast[2], atol=1e-4)  # float32 reordering only


def test_grouped_packing_orders_rows_by_adapter_inside_each_attention_bucket(
    tiny_bert_path,
) -> None:
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    scripted = script_encoder(backbone.encoder, backbone.sites)
    first, second = (model.adapters for model in _same_shape_models(backbone, 2))
    sites = len(scripted.site_keys)
    rows = [second, first, second, first, second]

    one_bucket = scripted.pack(rows, [5, 5, 5, 5, 5], "group")
    assert one_bucket.bucket_rows == [5]
    assert one_bucket.order == [0, 2, 4, 1, 3]
    assert one_bucket.group_rows == [3, 2]
    assert len(one_bucket.downs) == 2 * sites
    assert one_bucket.downs[0] is second.down[scripted.site_keys[0]]  # a reference, no copy
    assert scripted.pack([first, first, second], [5, 5, 5], "group").order is None

    # Short rows first, then long ones: two buckets, and no row leaves its bucket, so the
    # reorder pads nothing further; a set in both buckets gets one run in each.
    two_buckets = scripted.pack(rows, [10, 10, 100, 100, 100], "group")
    assert two_buckets.bucket_rows == [2, 3]
    assert two_buckets.order == [0, 1, 2, 4, 3]
    assert two_buckets.group_rows == [1, 1, 2, 1]
    keys = scripted.site_keys
    assert [d is second.down[keys[0]] for d in two_buckets.downs[:4]] == [1, 0, 1, 0]

    gathered = scripted.pack([second, first, second], [5, 5, 5], "gather")
    assert len(gathered.downs) == 3 * sites and gathered.group_rows == []
    with pytest.raises(ValueError, match="apply mode"):
        scripted.pack([first], [5], "scatter")


@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "tiny_bert_path"])
def test_served_predictions_equal_the_eager_ones_for_every_head(fixture, request) -> None:
    """Mixed heads, templates, bottlenecks and adapter kinds: batches the scripted forward
    cannot pack fall back to the eager one, and every row matches the eager answer."""
    backbone = load_backbone(str(request.getfixturevalue(fixture)), "cpu")
    served = serving_backbone(backbone, scripted=True)
    models = _models(backbone)
    rows = [Row(models[i % len(models)], text) for i, text in enumerate(TEXTS * 2)]
    reference = predict_mixed(backbone, rows)
    assert served.scripted is not None and backbone.scripted is None
    for mode in ("gather", "group"):
        got = predict_mixed(served, rows, apply_mode=mode)
        for got_row, want in zip(got, reference, strict=True):
            assert got_row == pytest.approx(want, abs=1e-5)
    same_shape = [row for row in rows if row.model.adapter_config.bottleneck == 8][:4]
    lengths = [5] * len(same_shape)
    assert served.scripted.pack([row.model.adapters for row in same_shape], lengths) is None
    assert served.scripted.pack([models[0].adapters, models[2].adapters], [5, 5]) is not None


def test_swap_style_row_adapters_run_on_the_scripted_forward(backbone) -> None:
    served = serving_backbone(backbone, scripted=True)
    models = _same_shape_models(backbone, 2)
    encoded = encode_rows([Row(models[0], text) for text in TEXTS])
    as_second = forward_encoded(
        served, [models[0]] * len(TEXTS), encoded, row_adapters=[models[1].adapters] * len(TEXTS)
    )
    expected = predict_mixed(backbone, [Row(models[1], text) for text in TEXTS])
    for got, want in zip(as_second, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_bf16_twin_scripts_too_and_stays_close(tiny_bert_path) -> None:
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    twin = serving_backbone(backbone, "bf16", scripted=True)
    eager_twin = serving_backbone(backbone, "bf16")
    models = _same_shape_models(backbone, 3)
    rows = [Row(models[i % 3], text) for i, text in enumerate(TEXTS)]
    assert twin.describe()["serving_forward"] == "scripted"
    gap = max(
        abs(a - b)
        for got, want in zip(
            predict_mixed(twin, rows), predict_mixed(eager_twin, rows), strict=True
        )
        for a, b in zip(got, want, strict=True)
    )
    assert gap < 0.03


def test_int8_and_compiled_twins_keep_the_eager_forward(tiny_bert_path) -> None:
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    assert serving_backbone(backbone, "int8", scripted=True).scripted is None
    compiled = serving_backbone(backbone, "fp32", compile=True, scripted=True)
    assert compiled.scripted is None
    assert compiled.describe()["serving_forward"] == "eager"


def test_scripted_twin_shares_the_encoder_weights(tiny_roberta_path) -> None:
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    served = serving_backbone(backbone, scripted=True)
    word = backbone.encoder.embeddings.word_embeddings.weight
    assert served.encoder is backbone.encoder
    assert served.scripted.module.word.data_ptr() == word.data_ptr()
    assert isinstance(served.scripted.module, torch.jit.ScriptModule)


def test_attention_buckets_split_where_padding_costs_more_than_a_bucket() -> None:
    assert attention_buckets([]) == []
    assert attention_buckets([30] * 8) == [8]  # nothing to save: one bucket
    # Sorted short and long rows: the short ones would be padded 4x; splitting saves far more
    # than one bucket's cost.
    assert attention_buckets([10] * 20 + [40] * 4) == [20, 4]
    # Rows keep their order: a split never regroups rows that are not consecutive.
    split = attention_buckets([40, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 40])
    assert sum(split) == 14 and split[0] == 1 and split[-1] == 1


def test_attention_buckets_keep_small_savings_in_one_bucket() -> None:
    """Padding a few rows by a few tokens saves less than a bucket's fixed cost."""
    assert attention_buckets([12, 13, 14, 15]) == [4]


def test_linear_rows_add_at_most_an_eighth_and_few_sizes() -> None:
    sizes = {bucketing.linear_rows(tokens) for tokens in range(1, 4097)}
    for tokens in range(1, 4097):
        rows = bucketing.linear_rows(tokens)
        assert tokens <= rows < tokens + max(8, tokens / 8 + 1)
    assert len(sizes) <= 64  # of 4,096 token counts


def test_bf16_cpu_forward_rounds_its_linear_rows_without_changing_the_answers(
    tiny_bert_path,
) -> None:
    """The extra rows are zeros the Linear layers process and the forward drops: every real
    token's numbers are those of the unrounded forward."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    assert not serving_backbone(backbone, "fp32", scripted=True).scripted.round_linear_rows
    scripted = serving_backbone(backbone, "bf16", scripted=True).scripted
    assert scripted.round_linear_rows
    models = _same_shape_models(backbone, 3)
    rows = [Row(models[i % 3], text) for i, text in enumerate(TEXTS[:7])]
    batch = collate(encode_rows(rows), backbone.tokenizer.pad_token_id, backbone.device)
    packed = scripted.pack([row.model.adapters for row in rows], batch.lengths)
    tokens = int(batch.attention_mask.sum())
    assert bucketing.linear_rows(tokens) > tokens  # this batch really is rounded
    outputs = [length - 1 for length in batch.lengths]
    assert bucketing.linear_rows(len(rows)) > len(rows)  # so are its picked tokens
    with torch.no_grad():
        rounded = scripted(batch.input_ids, batch.attention_mask, packed)
        rounded_picked = scripted(batch.input_ids, batch.attention_mask, packed, outputs=outputs)
        scripted.round_linear_rows = False
        exact = scripted(batch.input_ids, batch.attention_mask, packed)
        exact_picked = scripted(batch.input_ids, batch.attention_mask, packed, outputs=outputs)
    assert torch.equal(rounded, exact)
    assert torch.equal(rounded_picked, exact_picked)


def _grouped_batch(backbone, scripted: ScriptedEncoder):
    models = _same_shape_models(backbone, 3)
    rows = [Row(models[i % 3], text) for i, text in enumerate(TEXTS)]
    batch = collate(encode_rows(rows), backbone.tokenizer.pad_token_id, backbone.device)
    return batch, scripted.pack([row.model.adapters for row in rows], batch.lengths, "group")


def _run_profiled(scripted: ScriptedEncoder, batch, packed) -> tuple[torch.Tensor, set[str]]:
    """The forward's output and the names of the ops it ran."""
    with torch.no_grad(), torch.profiler.profile() as profile:
        output = scripted(batch.input_ids, batch.attention_mask, packed, batch.lengths)
    return output, {event.key for event in profile.key_averages()}


def test_the_fused_gelu_gives_what_a_separate_gelu_gives(tiny_bert_path) -> None:
    """Fused, each FFN's first Linear applies its GELU inside one oneDNN call; otherwise the
    GELU is a second op. Both must agree, and the fused forward must really take the fused op."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    fused = ScriptedEncoder(backbone.encoder, backbone.sites, fused_gelu=True)
    separate = ScriptedEncoder(backbone.encoder, backbone.sites, fused_gelu=False)
    batch, packed = _grouped_batch(backbone, fused)
    (fused_out, fused_ops), (separate_out, separate_ops) = (
        _run_profiled(scripted, batch, packed) for scripted in (fused, separate)
    )
    assert "mkldnn::_linear_pointwise" in fused_ops and "aten::gelu" not in fused_ops
    assert "mkldnn::_linear_pointwise" not in separate_ops and "aten::gelu" in separate_ops
    assert torch.allclose(fused_out, separate_out, atol=1e-5, rtol=0)
    assert fused_out.abs().max() > 0.1  # real activations, not an all-zero corner case


@pytest.mark.parametrize("prepack", [True, False])
def test_the_bf16_twin_prepacks_unless_told_not_to(tiny_bert_path, prepack: bool) -> None:
    """Off (`LISTSERVE_SERVING_PREPACK=false`), the scripted forward uses the twin encoder's
    own weights, with no second copy; on, a oneDNN copy where oneDNN has bf16 kernels."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    twin = serving_backbone(backbone, "bf16", scripted=True, prepack=prepack)
    packed = prepack and ONEDNN_BF16
    layer = twin.scripted.module.layers[0]
    plain = twin.encoder.encoder.layer[0].attention.self.query.weight
    assert twin.describe()["serving_packed_weights"] is packed
    assert (layer.q_weight.layout == torch._mkldnn) is packed
    if not packed:
        assert layer.q_weight.data_ptr() == plain.data_ptr()


def test_prepacked_weights_give_what_plain_weights_give(tiny_bert_path) -> None:
    """Packed, each of a layer's six Linear layers runs through oneDNN on a weight reordered
    once at build time; the forward must agree with the plain one."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    if not capabilities.onednn_supports(backbone.encoder.embeddings.word_embeddings.weight):
        pytest.skip("this torch has no oneDNN")
    packed = ScriptedEncoder(
        backbone.encoder, backbone.sites, fused_gelu=False, packed_weights=True
    )
    plain = ScriptedEncoder(
        backbone.encoder, backbone.sites, fused_gelu=False, packed_weights=False
    )
    batch, adapters = _grouped_batch(backbone, packed)
    with torch.no_grad(), torch.profiler.profile() as profile:
        packed_out = packed(batch.input_ids, batch.attention_mask, adapters, batch.lengths)
    calls = {event.key: event.count for event in profile.key_averages()}
    plain_out = plain(batch.input_ids, batch.attention_mask, adapters, batch.lengths)
    layers = len(backbone.encoder.encoder.layer)
    assert calls.get("mkldnn::_linear_pointwise") == 6 * layers
    assert "aten::addmm" not in calls and "aten::linear" not in calls
    assert torch.allclose(packed_out, plain_out, atol=1e-5, rtol=0)
    assert packed_out.abs().max() > 0.1


# oneDNN's bf16 kernels need AVX512-BF16 or AMX; without them it has no fused bf16 call.
ONEDNN_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()


@pytest.mark.parametrize(("precision", "fused"), [("fp32", False), ("bf16", ONEDNN_BF16)])
def test_only_a_bf16_cpu_forward_with_onednn_bf16_kernels_fuses_its_gelu(
    tiny_bert_path, precision: str, fused: bool
) -> None:
    """An fp32 Linear runs faster through MKL than through oneDNN's fused call on an AVX2 CPU,
    so only the bf16 twin, whose Linear layers run through oneDNN anyway, fuses; on a CPU
    without oneDNN's bf16 kernels it runs unfused instead of failing."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    twin = serving_backbone(backbone, precision, scripted=True)
    scripted = twin.scripted
    batch, packed = _grouped_batch(backbone, scripted)
    output, ops = _run_profiled(scripted, batch, packed)
    assert twin.describe()["serving_fused_gelu"] is fused  # what /info reports
    assert twin.describe()["serving_packed_weights"] is fused  # prepacked where it fuses
    assert ("mkldnn::_linear_pointwise" in ops) is fused
    assert ("aten::gelu" in ops) is not fused
    assert ("aten::addmm" in ops) is not fused  # packed, no Linear takes the plain path
    assert torch.isfinite(output).all() and output.abs().max() > 0.1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_onednn_supports_says_whether_the_fused_forward_builds(tiny_bert_path, precision) -> None:
    """The benchmark's fused variant is built only where this says so: the constructor's
    warm-up runs the forward, and without oneDNN's bf16 kernels a fused bf16 one fails."""
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    encoder = serving_backbone(backbone, precision, scripted=True).encoder
    if capabilities.onednn_supports(encoder.embeddings.word_embeddings.weight):
        assert ScriptedEncoder(encoder, backbone.sites, fused_gelu=True).fused_gelu
    else:
        with pytest.raises(RuntimeError, match="primitive descriptor"):
            ScriptedEncoder(encoder, backbone.sites, fused_gelu=True)
