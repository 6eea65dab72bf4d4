"""What the device's kernels support, and so which serving speed-ups are on by default."""

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware; elsewhere bf16 is emulated and
    slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def onednn_supports(weight: torch.Tensor) -> bool:
    """Whether oneDNN runs the Linear calls of an encoder with this weight (the fused Linear +
    GELU, prepacked weights): on the CPU, and for bf16 only with oneDNN's bf16 kernels."""
    return (
        weight.device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and (weight.dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def fuses_gelu_by_default(weight: torch.Tensor) -> bool:
    """Whether an encoder with this weight runs its FFN's first Linear and GELU as one oneDNN
    call: only a bf16 encoder on a CPU whose oneDNN has bf16 kernels (AVX512-BF16 or AMX).

    Why: there the fused call cost 4-7 % less CPU per 32-row batch (AMX Xeon, commit
    `fbf9b26`). An fp32 Linear runs through MKL instead, which beat oneDNN's fp32 kernel: on an
    AVX2 CPU the fused forward cost 8-13 % more (`python -m benchmarks.micro.adapter_apply`, commit
    `d21fd23`, docs/notes/serving-findings.md). On a CPU without those kernels oneDNN has no fused
    bf16 call at all ("could not create a primitive descriptor"); bf16 then runs emulated,
    unfused."""
    return weight.dtype == torch.bfloat16 and onednn_supports(weight)


def packs_weights_by_default(weight: torch.Tensor) -> bool:
    """Whether an encoder with this weight runs its Linear layers on weights prepacked once
    into oneDNN's blocked layout: where it fuses the GELU (`fuses_gelu_by_default`).

    Why: a bf16 Linear on plain weights reorders them into that layout on every call. On the
    AMX Xeon a prepacked [1536, 384] Linear took 38-44 against 91 us of CPU for 10 rows and
    0.95-0.99 against 1.2 ms for 1,000 (scratch microbenchmark, commit `4a7ba56`). The copies
    cost memory: one more copy of the encoder's Linear weights (MiniLM in bf16: ~21 MB);
    the eager forward keeps the plain ones."""
    return fuses_gelu_by_default(weight)
