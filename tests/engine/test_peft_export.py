"""`listserve export --format peft`: the real PEFT library loads the export onto the bare
encoder and computes the same hidden states as listserve's own forward (to 1e-4)."""

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from list_core.adapters import SingleAdapterPlan, adapter_plan
from list_core.artifact import save_task_model
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.cli import main
from list_core.tuners.peft_export import PEFT_TUNERS

from .tuner_helpers import nudged, trained

TEXT = "a superb cast and a lovely ending"


@pytest.mark.parametrize("tuner", PEFT_TUNERS)
@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "tiny_bert_path"])
def test_the_peft_export_gives_the_same_hidden_states(fixture, tuner, request, tmp_path):
    path = request.getfixturevalue(fixture)
    backbone = load_backbone(str(path), "cpu")
    model = nudged(trained(backbone, tuner).model, 3)
    adapter = save_task_model(model, backbone, tmp_path / "adapter")
    assert main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "peft")]) == 0
    assert {p.name for p in (tmp_path / "peft").iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    rows = model.encode([TEXT], [None])
    batch = collate(rows, backbone.tokenizer.pad_token_id, backbone.device)
    virtual = rows[0].virtual_tokens
    with torch.no_grad(), adapter_plan(SingleAdapterPlan(model.adapters)):
        ours = backbone.hidden_states(batch.input_ids, batch.encoder_mask)[:, virtual:]
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(path), tmp_path / "peft")
    input_ids = batch.input_ids[:, virtual:]
    with torch.no_grad():
        theirs = peft_model.eval()(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids)
        ).last_hidden_state[:, -input_ids.shape[1] :]
    plain = AutoModel.from_pretrained(path).eval()(input_ids=input_ids).last_hidden_state
    assert (theirs - plain).abs().max() > 1e-3  # the export really changes the encoder
    assert (ours - theirs).abs().max() < 1e-4


def test_a_tuner_without_a_peft_format_is_refused_by_name(tiny_roberta_path, tmp_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    model = trained(backbone, "bitfit").model
    adapter = save_task_model(model, backbone, tmp_path / "adapter")
    with pytest.raises(SystemExit, match="tuner 'bitfit' has no PEFT format"):
        main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "peft")])
