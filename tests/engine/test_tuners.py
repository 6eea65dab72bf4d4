"""Every tuner of the survey on one frozen backbone: what trains, what is stored, and that
rows of all of them in one mixed batch get what each gets alone, in both forwards."""

import json

import pytest
import torch

from list_core.adapters import SingleAdapterPlan, adapter_plan
from list_core.artifact import load_task_model, save_task_model
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.eager_fallback import EAGER_FALLBACKS
from list_core.field_error import FieldError
from list_core.inference import Row, predict_mixed
from list_core.serving.speedups import serving_backbone
from list_core.training import train_task
from list_core.tuners.registry import TUNERS, scripted_tuners

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED
from .tuner_helpers import every_tuner_models, nudged, trained

TEXTS = [
    "great fun movie",
    "the plot was dull and boring",
    "nice",
    "a superb cast with music and a lovely ending",
    "awful",
]


@pytest.fixture(scope="module", params=["tiny_roberta_path", "tiny_bert_path"])
def backbone(request):
    return load_backbone(str(request.getfixturevalue(request.param)), "cpu")


@pytest.fixture(scope="module")
def models(backbone):
    return every_tuner_models(backbone)


@pytest.mark.parametrize("tuner", TUNERS)
def test_only_the_tuners_tensors_train_and_the_backbone_stays_bit_identical(
    backbone, tuner, tmp_path
):
    before = {k: v.clone() for k, v in backbone.encoder.state_dict().items()}
    result = trained(backbone, tuner)
    after = backbone.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in backbone.encoder.parameters())
    model = result.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("adapters.", "head.")) for n in trainable)
    own = [n for n in trainable if n.startswith("adapters.")]
    assert bool(own) == (tuner != "linear"), own
    assert model.tuner == tuner and result.metrics["tuner"] == tuner
    assert (tuner == "partial") == ("copied_backbone_bytes" in result.metrics)
    directory = save_task_model(model, backbone, tmp_path / tuner, result.metrics)
    saved = json.loads((directory / "config.json").read_text())
    assert saved["tuner"] == tuner
    loaded = load_task_model(directory, backbone)
    original, back = model.state_dict(), loaded.state_dict()
    assert set(original) == set(back)
    assert all(torch.equal(original[k], back[k]) for k in original)
    assert loaded.tuner == tuner and loaded.adapter_config == model.adapter_config
    assert predict_mixed(backbone, [Row(loaded, t) for t in TEXTS]) == predict_mixed(
        backbone, [Row(model, t) for t in TEXTS]
    )


@pytest.mark.parametrize("tuner", [t for t in TUNERS if t not in ("linear", "mlp", "side")])
def test_each_tuner_really_changes_the_encoders_output(backbone, tuner):
    model = nudged(trained(backbone, tuner).model, 5)
    rows = model.encode(TEXTS, [None] * len(TEXTS))
    batch = collate(rows, backbone.tokenizer.pad_token_id, backbone.device)
    with torch.no_grad():
        plain = backbone.hidden_states(batch.input_ids, batch.encoder_mask)
        with adapter_plan(SingleAdapterPlan(model.adapters)):
            tuned = backbone.hidden_states(batch.input_ids, batch.encoder_mask)
    own = batch.attention_mask.bool()
    assert (tuned[own] - plain[own]).abs().max() > 1e-3


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_a_mixed_batch_of_every_tuner_equals_each_row_alone(backbone, models, scripted):
    served = serving_backbone(backbone, scripted=scripted)
    assert (served.scripted is not None) == scripted
    rows = [Row(models[i % len(models)], TEXTS[i % len(TEXTS)]) for i in range(2 * len(models))]
    fallbacks = EAGER_FALLBACKS.snapshot()
    mixed = predict_mixed(served, rows)
    if scripted:  # the batch holds tuners the scripted forward does not compute
        assert EAGER_FALLBACKS.snapshot() != fallbacks
    for row, probabilities in zip(rows, mixed, strict=True):
        alone = predict_mixed(served, [row])[0]
        assert probabilities == pytest.approx(alone, abs=1e-5)
    # Tasks of one tuner differ, so a mix-up between rows would show.
    first, second = models[0], models[1]
    assert predict_mixed(served, [Row(first, TEXTS[0])]) != predict_mixed(
        served, [Row(second, TEXTS[0])]
    )


def test_the_scripted_forward_serves_its_tuners_without_falling_back(backbone, models):
    served = serving_backbone(backbone, scripted=True)
    ours = [m for m in models if m.tuner in scripted_tuners()]
    assert (
        {m.tuner for m in ours}
        == set(scripted_tuners())
        == {
            "adapter",
            "houlsby",
            "linear",
            "mlp",
            "side",
        }
    )
    same_kind = [m for m in ours if m.tuner != "houlsby"]
    rows = [Row(m, TEXTS[i % len(TEXTS)]) for i, m in enumerate(same_kind)]
    before = EAGER_FALLBACKS.snapshot()
    scripted = predict_mixed(served, rows, apply_mode="group")
    assert EAGER_FALLBACKS.snapshot() == before
    eager = predict_mixed(backbone, rows)
    for got, want in zip(scripted, eager, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_mlp_with_a_head_read_at_the_mask_is_refused_naming_both_fields(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    with pytest.raises(FieldError) as refused:
        train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "prompt", TINY_STEPS, tuner="mlp")
    assert refused.value.fields == ("tuner", "method")
    with pytest.raises(FieldError, match="must be one of") as unknown:
        train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "prompt", TINY_STEPS, tuner="nope")
    assert unknown.value.field == "tuner"


@pytest.mark.parametrize(
    ("tuner", "overrides", "field"),
    [
        ("lora", {"lora_rank": 0}, "hyperparameters.lora_rank"),
        ("lora", {"lora_targets": ["query", "nowhere"]}, "hyperparameters.lora_targets"),
        ("prefix", {"prefix_length": 500}, "hyperparameters.prefix_length"),
        ("prompt_tuning", {"prompt_length": 0}, "hyperparameters.prompt_length"),
        ("partial", {"partial_layers": 3}, "hyperparameters.partial_layers"),
        ("mlp", {"mlp_layers": 9}, "hyperparameters.mlp_layers"),
        ("side", {"side_hidden": "wide"}, "hyperparameters.side_hidden"),
    ],
)
def test_bad_tuner_options_name_their_field(tiny_roberta_path, tuner, overrides, field):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    method = "classic" if tuner == "mlp" else "prompt"
    with pytest.raises(FieldError) as refused:
        train_task(
            backbone, SENTIMENT, EXAMPLES, [], method, {**TINY_STEPS, **overrides}, tuner=tuner
        )
    assert refused.value.field == field


def test_an_artifact_from_before_tuners_loads_as_the_adapter_tuner(tiny_roberta_path, tmp_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    result = train_task(backbone, SENTIMENT, EXAMPLES, [], "prompt", TINY_STEPS)
    directory = save_task_model(result.model, backbone, tmp_path / "old")
    config = json.loads((directory / "config.json").read_text())
    assert "tuner_options" not in config  # the adapter's options stay under "adapter"
    del config["tuner"]
    (directory / "config.json").write_text(json.dumps(config))
    loaded = load_task_model(directory, backbone)
    assert loaded.tuner == "adapter" and loaded.adapter_config == result.model.adapter_config


def test_reparameterised_prompts_and_prefixes_store_only_their_final_vectors(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    for tuner, stored in (("p_tuning", {"adapters.prompt"}), ("prefix", {"adapters.prefix"})):
        model = trained(backbone, tuner).model
        assert {k for k in model.state_dict() if k.startswith("adapters.")} == stored
