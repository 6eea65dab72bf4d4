"""The one frozen pretrained encoder every task in the process shares.

Loads any Hugging Face encoder by hub id or local folder through `from_pretrained`, freezes it,
detects whether it carries a usable masked-LM head, and fingerprints its weights so adapters can
refuse to run on a backbone they were not trained for.
"""

import copy
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from list_core.adapters import install_adapter_sites
from list_core.device import resolve_device
from list_core.eager_fallback import EAGER_FALLBACKS

if TYPE_CHECKING:
    from list_core.serving.scripted import ScriptedEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlmHeadWeights:
    """The frozen masked-LM head, split into the pieces a per-task prompt head copies."""

    dense: nn.Linear
    layer_norm: nn.LayerNorm
    activation: nn.Module
    decoder_weight: torch.Tensor
    decoder_bias: torch.Tensor


class Backbone:
    """A frozen encoder, its tokenizer, and its (optional) masked-LM head."""

    def __init__(
        self,
        name: str,
        source: str,
        encoder: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        mlm_head: MlmHeadWeights | None,
        device: torch.device,
    ) -> None:
        self.name = name
        self.source = source
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.mlm_head = mlm_head
        self.device = device
        self.hidden_size: int = encoder.config.hidden_size
        self.fingerprint = f"{name}@{weights_digest(encoder, mlm_head)}"
        self.sites = install_adapter_sites(encoder)
        self.precision = "fp32"
        self.compiled = False
        self.scripted: ScriptedEncoder | None = None

    def twin(
        self,
        encoder: nn.Module,
        precision: str,
        compiled: bool,
        scripted: "ScriptedEncoder | None" = None,
    ) -> "Backbone":
        """The same backbone (name, fingerprint, tokenizer, head) over an optimised copy of its
        encoder, or a scripted forward of it: adapters trained on this backbone run on the twin
        unchanged."""
        twin = copy.copy(self)
        twin.encoder = encoder
        twin.precision = precision
        twin.compiled = compiled
        twin.scripted = scripted
        return twin

    @property
    def has_mlm_head(self) -> bool:
        return self.mlm_head is not None

    @property
    def prompt_head_kind(self) -> str:
        """`mlm` when label words can be scored at a mask, else `similarity` (why:
        docs/design.md)."""
        return "mlm" if self.has_mlm_head else "similarity"

    @property
    def max_positions(self) -> int:
        return int(getattr(self.encoder.config, "max_position_embeddings", 512))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states, upcast to fp32 from a bf16/fp16 serving encoder (heads keep
        full precision); whichever adapters are active in this thread apply."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden.float() if hidden.dtype in (torch.bfloat16, torch.float16) else hidden

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "architecture": type(self.encoder).__name__,
            "hidden_size": self.hidden_size,
            "layers": len({site.layer for site in self.sites}),
            "head_kind": self.prompt_head_kind,
            "device": str(self.device),
            "serving_precision": self.precision,
            "serving_compiled": self.compiled,
            "serving_forward": "scripted" if self.scripted is not None else "eager",
            "serving_fused_gelu": self.scripted is not None and self.scripted.fused_gelu,
            "serving_packed_weights": self.scripted is not None and self.scripted.packed_weights,
            # Rows whose tuner the scripted forward does not compute ran eager (docs/tuners.md).
            "serving_eager_fallback_rows": EAGER_FALLBACKS.snapshot(),
        }


def weights_digest(encoder: nn.Module, mlm_head: MlmHeadWeights | None) -> str:
    """sha256 over every frozen tensor (name, shape, bytes): a stable id for these weights."""
    digest = hashlib.sha256()
    tensors = dict(encoder.state_dict())
    if mlm_head is not None:
        tensors["mlm.decoder_weight"] = mlm_head.decoder_weight
        tensors["mlm.decoder_bias"] = mlm_head.decoder_bias
        for key, value in mlm_head.dense.state_dict().items():
            tensors[f"mlm.dense.{key}"] = value
        for key, value in mlm_head.layer_norm.state_dict().items():
            tensors[f"mlm.layer_norm.{key}"] = value
    for key in sorted(tensors):
        tensor = tensors[key].detach().to("cpu").contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def _extract_mlm_head(model: nn.Module) -> MlmHeadWeights | None:
    """Find the MLM head for the RoBERTa and BERT layouts (the families listserve supports)."""
    lm_head = getattr(model, "lm_head", None)
    if lm_head is not None and all(hasattr(lm_head, a) for a in ("dense", "layer_norm", "decoder")):
        return MlmHeadWeights(
            dense=lm_head.dense,
            layer_norm=lm_head.layer_norm,
            activation=nn.GELU(),
            decoder_weight=lm_head.decoder.weight,
            decoder_bias=lm_head.bias
            if getattr(lm_head, "bias", None) is not None
            else lm_head.decoder.bias,
        )
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if predictions is not None and hasattr(predictions, "transform"):
        transform = predictions.transform
        return MlmHeadWeights(
            dense=transform.dense,
            layer_norm=transform.LayerNorm,
            activation=_as_module(transform.transform_act_fn),
            decoder_weight=predictions.decoder.weight,
            decoder_bias=predictions.bias
            if getattr(predictions, "bias", None) is not None
            else predictions.decoder.bias,
        )
    return None


def _as_module(function) -> nn.Module:
    return function if isinstance(function, nn.Module) else _Lambda(function)


class _Lambda(nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


HEAD_MARKERS = ("lm_head.", "cls.predictions.", "predictions.", "generator_")


def _is_head_key(key: str) -> bool:
    return key.startswith(HEAD_MARKERS) or ".predictions." in key


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Load without transformers' own report. Probing for an MLM head loads every checkpoint as
    a masked LM, so an encoder saved without one (all-MiniLM-L6-v2) made it print a "checkpoint
    seem corrupted" warning, a MISSING/UNEXPECTED weights table and a progress bar, all about
    the head this module then decides not to use; `_load` logs the one line that matters."""
    verbosity = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _load(name_or_path: str, device: torch.device) -> Backbone:
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(f"backbone {name_or_path!r}: tokenizer needs a mask and a pad token")
        model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True)
    missing = list(info.get("missing_keys", []))
    missing_head = sorted(key for key in missing if _is_head_key(key))
    mlm_head = None if missing_head else _extract_mlm_head(model)
    if mlm_head is not None:
        log.info("backbone %s: head kind mlm (its checkpoint has MLM head weights)", name_or_path)
    elif missing_head:
        log.info(
            "backbone %s: head kind similarity (its checkpoint has no MLM head weights: %d "
            "tensors such as %s are absent), so prompts are scored by the similarity head",
            name_or_path,
            len(missing_head),
            missing_head[0],
        )
    else:
        log.info(
            "backbone %s: head kind similarity (%s has no MLM head of a RoBERTa or BERT layout)",
            name_or_path,
            type(model).__name__,
        )
    missing_encoder = sorted(set(missing) - set(missing_head))
    if missing_encoder:
        log.warning(
            "backbone %s: %d encoder weights are not in its checkpoint and were initialised at "
            "random (e.g. %s); is it the model you meant?",
            name_or_path,
            len(missing_encoder),
            missing_encoder[0],
        )
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    encoder = model.base_model
    local = Path(name_or_path)
    display_name = "/".join(local.resolve().parts[-2:]) if local.exists() else name_or_path
    return Backbone(display_name, name_or_path, encoder, tokenizer, mlm_head, device)


_cache: dict[tuple[str, str], Backbone] = {}
_cache_lock = threading.Lock()


def load_backbone(name_or_path: str, device: str = "auto") -> Backbone:
    """Load (once per process) and freeze the encoder named by a hub id or a local folder."""
    resolved = resolve_device(device)
    key = (str(name_or_path), str(resolved))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(str(name_or_path), resolved)
        return _cache[key]
