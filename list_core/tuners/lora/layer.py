"""LoRA's per-row computation at one Linear: `out + scale (x A) B`, in fp32."""

import torch


def lora_output(
    x: torch.Tensor, out: torch.Tensor, down: torch.Tensor, up: torch.Tensor, scale: float
) -> torch.Tensor:
    """`out` plus the low-rank update of the Linear's input `x` (A = `down` [in, r],
    B = `up` [r, out]), computed in the tuner's dtype and returned in the encoder's."""
    delta = (x.to(down.dtype) @ down) @ up
    return out + (delta * scale).to(out.dtype)
