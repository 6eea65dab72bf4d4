"""Speed-ups for the frozen backbone's serving forward: a scripted forward, int8, bf16 and
torch.compile.

They act on a serving twin of the backbone, never on the encoder training uses: int8
dynamically quantised Linear layers have no backward pass, and adapters must learn against the
full-precision weights they are fingerprinted by. Adapters and heads stay fp32 in every mode.

- `int8`: dynamic int8 quantisation of the encoder's Linear layers (CPU only). The twin shares
  every non-Linear tensor (embeddings, LayerNorms) with the training encoder, so it costs only
  the int8 weights.
- `bf16`: a bfloat16 copy of the encoder. `auto` picks it where the device multiplies bf16 in
  hardware (CPUs with AVX512-BF16 or AMX, CUDA GPUs that support bf16), else fp32. On a CPU
  `auto` also needs the scripted forward, whose rounded Linear row counts keep oneDNN's
  per-shape state bounded (`linear_rows`); the eager forward's shapes vary without end. On the
  benchmark data bf16 changed mean accuracy by -0.1 points and agreed with fp32 on 99.9 % of
  test rows, at about twice the throughput on such a CPU (benchmarks/RESULTS.md).
- `compile`: `torch.compile` on each layer's adapter-free blocks (self-attention and the FFN
  up-projection). The whole encoder is not compiled: its adapter sites read a per-thread plan
  that changes every batch, which made dynamo recompile until it gave up.
- `scripted`: the TorchScript forward of `list_core.serving.scripted` over the (fp32 or bf16)
  encoder: the same numbers, the GIL released once per forward, and no Linear work on padding.
  It does not apply to int8 or compiled encoders, which keep the eager forward.

int8 and compile are off by default; the service serves `auto` precision and turns `scripted`
on. What each changes in speed and accuracy: benchmarks/RESULTS.md.
"""

import copy
import warnings

import torch
from torch import nn

from list_core.backbone import Backbone
from list_core.serving.capabilities import native_bf16
from list_core.serving.scripted import script_encoder, scriptable

PRECISIONS = ("fp32", "int8", "bf16")
AUTO_PRECISION = "auto"


def resolve_precision(precision: str, device: torch.device, scripted: bool = True) -> str:
    """`precision`, with `auto` made bf16 on a device with native bf16 (on a CPU, only under
    the scripted forward) and fp32 elsewhere."""
    if precision == AUTO_PRECISION:
        bf16 = native_bf16(device) and (scripted or device.type != "cpu")
        return "bf16" if bf16 else "fp32"
    if precision not in PRECISIONS:
        choices = (AUTO_PRECISION, *PRECISIONS)
        raise ValueError(f"serving precision must be one of {choices}, got {precision!r}")
    return precision


def serving_backbone(
    backbone: Backbone,
    precision: str = "fp32",
    compile: bool = False,
    scripted: bool = False,
    prepack: bool = True,
) -> Backbone:
    """`backbone` itself when nothing is switched on, else a twin over an optimised encoder
    (or the same encoder with a scripted forward). `precision` may be `auto`
    (`resolve_precision`). `compile` replaces the scripted forward. `prepack` False keeps the
    scripted forward's Linear layers on their plain weights (see `packs_weights_by_default`)."""
    precision = resolve_precision(
        precision,
        backbone.device,
        scripted and not compile and scriptable(backbone.encoder, backbone.sites),
    )
    if precision == "fp32" and not compile:
        forward = script_encoder(backbone.encoder, backbone.sites, prepack) if scripted else None
        return (
            backbone if forward is None else backbone.twin(backbone.encoder, "fp32", False, forward)
        )
    if precision == "int8":
        if backbone.device.type != "cpu":
            raise ValueError(
                "serving precision int8 runs on CPU only (dynamic quantisation has no CUDA "
                f"kernels); the backbone is on {backbone.device}; use bf16 on CUDA"
            )
        encoder = _int8_encoder(backbone.encoder)
    elif precision == "bf16":
        encoder = copy.deepcopy(backbone.encoder).to(torch.bfloat16)
    else:
        encoder = _copy_sharing(backbone.encoder)
    if compile:
        _compile_adapter_free_blocks(encoder)
    forward = script_encoder(encoder, backbone.sites, prepack) if scripted and not compile else None
    return backbone.twin(encoder, precision=precision, compiled=compile, scripted=forward)


def _int8_encoder(encoder: nn.Module) -> nn.Module:
    """Quantise a copy whose Linear weights are its own and whose other tensors are shared."""
    linear_tensors = {
        id(tensor)
        for module in encoder.modules()
        if isinstance(module, nn.Linear)
        for tensor in module.parameters(recurse=False)
    }
    twin = _copy_sharing(encoder, except_ids=linear_tensors)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(
            twin, {nn.Linear}, dtype=torch.qint8, inplace=True
        )


def _copy_sharing(
    encoder: nn.Module, except_ids: frozenset[int] | set[int] = frozenset()
) -> nn.Module:
    """A structural copy that shares every parameter and buffer but those in `except_ids`, so
    changing the copy's modules (quantising, compiling) leaves the training encoder be."""
    memo = {
        id(t): t for t in [*encoder.parameters(), *encoder.buffers()] if id(t) not in except_ids
    }
    return copy.deepcopy(encoder, memo)


def _compile_adapter_free_blocks(encoder: nn.Module) -> None:
    for name, module in encoder.named_modules():
        if name.endswith("attention.self") or name.endswith(".intermediate"):
            module.compile(dynamic=True)
