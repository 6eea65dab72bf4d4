"""Export a trained task's tuner as a PEFT adapter (`adapter_config.json` +
`adapter_model.safetensors`) for `lora`, `prefix`, `prompt_tuning` and `p_tuning`.

The export targets the bare encoder (`AutoModel.from_pretrained(<backbone>)`, PEFT task type
FEATURE_EXTRACTION), which is what listserve's tuners change; the task's head is not part of
PEFT's formats and stays in listserve's own artifact. The config is written by PEFT's own
config classes, so `peft` must be installed (`pip install 'listserve[peers]'`); listserve's
service never needs it. Bottleneck adapters have no PEFT format, and the AdapterHub `adapters`
library does not install beside transformers 5 (docs/tuners.md).
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

from list_core.backbone import Backbone
from list_core.task_model import TaskModel

PEFT_TUNERS = ("lora", "prefix", "prompt_tuning", "p_tuning")
# Where each LoRA target place sits in a BERT/RoBERTa layer, as PEFT names modules.
LORA_MODULES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "ffn": "output.dense",
}


class ExportError(ValueError):
    """The task's tuner has no PEFT format, or PEFT is not installed."""


def export_peft(model: TaskModel, backbone: Backbone, out: str | Path) -> Path:
    """Write `model`'s tuner as a PEFT adapter into `out`."""
    if model.tuner not in PEFT_TUNERS:
        raise ExportError(
            f"tuner {model.tuner!r} has no PEFT format; PEFT exports {list(PEFT_TUNERS)}"
        )
    try:
        import peft
    except ImportError as error:
        raise ExportError("exporting needs peft: pip install 'listserve[peers]'") from error
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config, tensors = _PEFT_FORMS[model.tuner](peft, model, backbone)
    config.base_model_name_or_path = backbone.source
    config.inference_mode = True
    config.save_pretrained(str(out))
    save_file(
        {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in tensors.items()},
        str(out / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    return out


def _shape(backbone: Backbone) -> dict:
    config = backbone.encoder.config
    return {
        "num_layers": int(config.num_hidden_layers),
        "token_dim": int(config.hidden_size),
        "num_attention_heads": int(config.num_attention_heads),
        "num_transformer_submodules": 1,
        "task_type": "FEATURE_EXTRACTION",
    }


def _lora(peft, model: TaskModel, backbone: Backbone):
    tuner = model.adapters
    options = model.adapter_config
    modules = "|".join(LORA_MODULES[place].replace(".", r"\.") for place in options.targets)
    config = peft.LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        target_modules=rf".*encoder\.layer\.\d+\.({modules})",
        lora_dropout=0.0,
        bias="none",
        task_type="FEATURE_EXTRACTION",
    )
    tensors = {}
    for key in tuner.site_keys:
        layer, _, place = key.removeprefix("layer").partition("_")
        path = f"base_model.model.encoder.layer.{layer}.{LORA_MODULES[place]}"
        tensors[f"{path}.lora_A.weight"] = tuner.down[key].T
        tensors[f"{path}.lora_B.weight"] = tuner.up[key].T
    return config, tensors


def _prefix(peft, model: TaskModel, backbone: Backbone):
    prefixes = model.adapters.prefixes()  # [layers, 2, length, width]
    length = prefixes.shape[2]
    config = peft.PrefixTuningConfig(num_virtual_tokens=length, **_shape(backbone))
    # PEFT lays a prefix token's vectors out as (layer, key/value, width), flattened.
    flat = prefixes.permute(2, 0, 1, 3).reshape(length, -1)
    return config, {"prompt_embeddings": flat}


def _prompt_tuning(peft, model: TaskModel, backbone: Backbone):
    prompts = model.adapters.prompts()
    config = peft.PromptTuningConfig(num_virtual_tokens=prompts.shape[0], **_shape(backbone))
    return config, {"prompt_embeddings": prompts}


def _p_tuning(peft, model: TaskModel, backbone: Backbone):
    prompts = model.adapters.prompts()
    config = peft.PromptEncoderConfig(
        num_virtual_tokens=prompts.shape[0],
        encoder_hidden_size=model.adapter_config.hidden,
        **_shape(backbone),
    )
    return config, {"prompt_embeddings": prompts}


_PEFT_FORMS = {
    "lora": _lora,
    "prefix": _prefix,
    "prompt_tuning": _prompt_tuning,
    "p_tuning": _p_tuning,
}
