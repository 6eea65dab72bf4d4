"""A TorchScript serving forward for BERT- and RoBERTa-style encoders with per-row adapters.

Why: the eager Hugging Face forward is a few hundred small torch calls, and each one releases
the GIL and must win it back. In a server the event loop runs Python in the same process, so
every win-back can wait out the interpreter's 5 ms switch interval: next to one busy Python
thread a 14 ms one-row forward took 3 s (docs/notes/serving-findings.md). A scripted module runs the
whole forward in C++ and releases the GIL once, so the model thread and the event loop really
use two cores.

`ScriptedEncoder` is the entry point: it scripts the modules of `list_core.serving.torchscript`
(what they compute, and how: there), packs a batch's adapters for them
(`list_core.serving.adapter_packing`) and lays the batch's rows out in Python
(`list_core.serving.bucketing`). Encoders it does not cover (another activation or position
scheme, quantised or compiled twins, mixed adapter shapes in one batch) keep the eager path.

TorchScript is deprecated upstream in favour of torch.compile/torch.export, but it is what runs
a whole forward with one GIL release on the pinned torch 2.13 without a C++ toolchain at run
time; `LISTSERVE_SERVING_SCRIPTED=false` returns to the eager forward.
"""

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from list_core.adapters import PLACEMENTS, AdapterSet, AdapterSite
from list_core.serving.adapter_packing import AdapterPacker, PackedAdapters
from list_core.serving.bucketing import (
    attention_buckets,
    bucket_spans,
    linear_rows,
    packed_positions,
    token_counts,
)
from list_core.serving.capabilities import fuses_gelu_by_default, packs_weights_by_default
from list_core.serving.torchscript import EncoderModule
from list_core.sites import unwrapped

SUPPORTED_MODELS = ("BertModel", "RobertaModel", "XLMRobertaModel")


class ScriptedEncoder:
    """The scripted forward of one encoder, and the packing of a batch's adapters for it."""

    def __init__(
        self,
        encoder: nn.Module,
        sites: Sequence[AdapterSite],
        fused_gelu: bool | None = None,
        packed_weights: bool | None = None,
    ) -> None:
        """`fused_gelu` (default: `fuses_gelu_by_default`) runs each FFN's first Linear and its
        GELU as one oneDNN call (see `LayerModule._ffn_in`); `packed_weights` (default:
        `packs_weights_by_default`) runs every Linear through oneDNN on a copy of its weight
        prepacked once (see `packs_weights_by_default`)."""
        self.hidden_size = int(encoder.config.hidden_size)
        weight = unwrapped(encoder.embeddings.word_embeddings).weight
        self.packer = AdapterPacker(sites, self.hidden_size, weight.device)
        self.round_linear_rows = weight.dtype != torch.float32 and weight.device.type == "cpu"
        self.fused_gelu = fuses_gelu_by_default(weight) if fused_gelu is None else fused_gelu
        self.packed_weights = (
            packs_weights_by_default(weight) if packed_weights is None else packed_weights
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
            module = EncoderModule(encoder, self.fused_gelu, self.packed_weights)
            self.module = torch.jit.script(module.eval())
        self._warm_up(weight.device)

    def _warm_up(self, device: torch.device) -> None:
        """TorchScript profiles a function's first two runs before it optimises it; run them
        here (one adapter, and several gathered and grouped; one attention bucket and two), not
        in the first requests."""
        input_ids = torch.ones(2, 4, dtype=torch.long, device=device)
        attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], device=device)
        down = torch.zeros(self.hidden_size, 1, device=device)
        sites = len(self.site_keys)
        single = PackedAdapters([down] * sites, [down.T] * sites, False, [])
        several = ([down] * 2 * sites, [down.T] * 2 * sites, False)
        gathered = PackedAdapters(*several, [])
        grouped = PackedAdapters(*several, [1, 1], order=[1, 0])
        with torch.no_grad():
            for packed in (single, gathered, grouped) * 2:
                self(input_ids, attention_mask, packed)
                self(input_ids, attention_mask, packed, outputs=[3, 0])
                spans = bucket_spans([4, 2], [1, 1])
                self.module(input_ids, attention_mask, *several[:2], [], False, spans, 8, [], [], 0)
                self.module(
                    input_ids, attention_mask, *several[:2], [], False, spans, 8, [3, 5], [], 8
                )

    @property
    def site_keys(self) -> list[str]:
        """The adapter sites the forward takes weights for, in the order it takes them."""
        return self.packer.site_keys

    def pack(
        self, row_adapters: Sequence[AdapterSet], lengths: Sequence[int], mode: str = "gather"
    ) -> PackedAdapters | None:
        """The rows' adapters packed for this forward (`AdapterPacker.pack`)."""
        return self.packer.pack(row_adapters, lengths, mode)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        packed: PackedAdapters,
        lengths: Sequence[int] | None = None,
        outputs: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Last hidden states in fp32 (heads keep full precision under a bf16 encoder), in the
        caller's row order. `lengths` (real tokens per row) spares reading them off the mask.

        `outputs` (one position per row) asks for those positions only, e.g. a prompt's mask
        token for an MLM head: the last layer then runs its query, FFN and adapters on one
        token per row instead of all of them, and every other position is zero."""
        lengths = attention_mask.sum(dim=1).tolist() if lengths is None else list(lengths)
        wanted = None if outputs is None else list(outputs)
        picks = None
        if packed.order is not None:
            picks = torch.tensor(packed.order, device=input_ids.device)
            input_ids = input_ids.index_select(0, picks)
            attention_mask = attention_mask.index_select(0, picks)
            lengths = [lengths[row] for row in packed.order]
            wanted = None if wanted is None else [wanted[row] for row in packed.order]
        segments = token_counts(lengths, packed.group_rows) if packed.group_rows else []
        tokens = [] if wanted is None else packed_positions(lengths, wanted)
        hidden = self.module(
            input_ids,
            attention_mask,
            packed.downs,
            packed.ups,
            segments,
            packed.gelu,
            bucket_spans(lengths, packed.bucket_rows or attention_buckets(lengths)),
            linear_rows(sum(lengths)) if self.round_linear_rows else 0,
            tokens,
            list(packed.group_rows) if tokens else [],
            linear_rows(len(tokens)) if self.round_linear_rows and tokens else 0,
        )
        if picks is not None:
            hidden = hidden.index_select(0, torch.argsort(picks))
        return hidden.float() if hidden.dtype != torch.float32 else hidden


def scriptable(encoder: nn.Module, sites: Sequence[AdapterSite]) -> bool:
    """Whether the scripted forward reproduces `encoder` exactly."""
    config = encoder.config
    quantised = any(
        type(module).__module__.startswith("torch.ao.nn.quantized") for module in encoder.modules()
    )
    return (
        type(encoder).__name__ in SUPPORTED_MODELS
        and getattr(config, "hidden_act", None) == "gelu"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not quantised
        and {site.place for site in sites} >= set(PLACEMENTS)
    )


def script_encoder(
    encoder: nn.Module, sites: Sequence[AdapterSite], prepack: bool = True
) -> ScriptedEncoder | None:
    """The scripted forward for `encoder`, or None for one it does not reproduce exactly.
    `prepack` False keeps every Linear on its plain weight (no copy; see
    `packs_weights_by_default`)."""
    if not scriptable(encoder, sites):
        return None
    return ScriptedEncoder(encoder, sites, packed_weights=None if prepack else False)
