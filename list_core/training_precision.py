"""The backbones a training job runs its forwards on: the frozen Linear layers in bf16 where the
CPU multiplies bf16 in hardware, and a scripted twin for the forwards that need no gradient.

Why: a `fast` LiST job spends nearly all its time in the frozen encoder's Linear layers, in
the forward and in the backward that carries the gradient through them to the adapters (what
bf16 saves there: `benchmarks.micro.training_ceiling`, docs/notes/training-speed.md). Only
those layers change: each multiplies in bf16 from a bf16
copy of its weight and returns fp32, so the residual stream, LayerNorms, attention, every
tuner and head, and the gradients of the trainable tensors all stay fp32. The training twin
runs HF's eager attention (the same softmax(QK^T)V in fp32) because forward-mode AD, which
meta re-weighting uses under bf16 (`list_core.reweighting.losses_and_alignment`), has no
formula for the fused CPU attention kernel. Where there is no bf16 hardware, bf16 would be
emulated and slower, so training stays fp32 there (and on CUDA, where it is not measured yet;
`precision="bf16"` asks for it).
"""

import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from list_core.backbone import Backbone
from list_core.serving.capabilities import native_bf16
from list_core.serving.speedups import _copy_sharing, serving_backbone

TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def resolve_training_precision(precision: str, device: torch.device) -> str:
    """`precision`, with `auto` made bf16 on a CPU with bf16 hardware and fp32 elsewhere;
    bf16 where the device has no bf16 hardware is refused (it would be emulated, slower)."""
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(
            f"training precision must be one of {TRAINING_PRECISIONS}, got {precision!r}"
        )
    if precision == "auto":
        return "bf16" if device.type == "cpu" and native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        raise ValueError(f"training precision bf16 needs bf16 hardware, which {device} lacks")
    return precision


class Bf16FrozenLinear(nn.Module):
    """A frozen Linear that multiplies in bf16 and returns the dtype it was given. `weight` and
    `bias` are the fp32 originals (what readers of the encoder's structure see); the product
    uses a bf16 copy, made once, not one cast per call."""

    def __init__(self, linear: nn.Linear, bf16_linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.weight_bf16 = bf16_linear.weight
        self.bias_bf16 = bf16_linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x.to(torch.bfloat16), self.weight_bf16, self.bias_bf16)
        return out.to(x.dtype)


@dataclass(frozen=True)
class TrainingBackbones:
    """`trains`: the backbone for forwards whose gradient trains (the backbone itself in fp32,
    else its bf16-Linear twin). `frozen`: the one for no-grad forwards of a fixed model (the
    teacher's pseudo-labels, evaluation): a scripted twin of the same precision where the
    encoder has one, else `trains`."""

    precision: str
    trains: Backbone
    frozen: Backbone


_cache: "weakref.WeakKeyDictionary[Backbone, dict]" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def training_backbones(backbone: Backbone, precision: str, scripted: bool) -> TrainingBackbones:
    """The training backbones for `backbone` (`precision` resolved already), built once per
    backbone and process: the twins share the backbone's tokenizer, sites, fingerprint and
    fp32 weights, and add one bf16 copy of the encoder for bf16."""
    key = (precision, scripted)
    with _cache_lock:
        built = _cache.setdefault(backbone, {})
        if key not in built:
            built[key] = _build(backbone, precision, scripted)
        return built[key]


def _build(backbone: Backbone, precision: str, scripted: bool) -> TrainingBackbones:
    if precision == "fp32":
        frozen = serving_backbone(backbone, "fp32", scripted=scripted)
        return TrainingBackbones("fp32", backbone, frozen)
    bf16 = serving_backbone(backbone, "bf16", scripted=scripted)
    trains = backbone.twin(_bf16_linear_encoder(backbone.encoder, bf16.encoder), "bf16", False)
    return TrainingBackbones("bf16", trains, bf16 if bf16.scripted is not None else trains)


def _bf16_linear_encoder(encoder: nn.Module, bf16_encoder: nn.Module) -> nn.Module:
    """A copy of `encoder` sharing its tensors, with every Linear a `Bf16FrozenLinear` over the
    same layer of `bf16_encoder`, and eager attention (forward-mode AD goes through it)."""
    twin = _copy_sharing(encoder)
    twin.config._attn_implementation = "eager"
    bf16_modules = dict(bf16_encoder.named_modules())
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                path = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, Bf16FrozenLinear(child, bf16_modules[path]))
    return twin
