"""Weights for pseudo-labelled examples: meta re-weighting (Ren et al. 2018), computed cheaply,
and an optional class balance.

Learning-to-re-weight gives example i the weight max(0, g_lab . grad l_i): examples whose
gradient points the same way as the labelled loss's gradient help, the rest are dropped. The
reference code gets this by differentiating through an inner SGD step over a copy of the model.
Here it is one extra no-grad forward instead: the directional derivative of every l_i along
g_lab is a finite difference, l_i(theta + s g_lab) - l_i(theta) ~= s g_lab . grad l_i,
evaluated with the parameters substituted (`torch.func.functional_call`), so no parameter
is copied or changed in place.

Where the frozen computations run in bf16 (`list_core.training_precision`) that difference
fails: bf16 rounding of the encoder's activations swamps the 1e-3 step (on MiniLM the
estimate's correlation with the exact products fell to 0.6). `losses_and_alignment` gets the
same products exactly instead, by forward-mode AD along g_lab, and in the forward whose
losses train the student, so the losses are computed once.
"""

import threading
import warnings
from collections.abc import Callable

import torch
import torch.autograd.forward_ad as forward_ad
from torch import nn

# Forward-mode AD levels are process-wide in torch (a second thread's level is refused as
# nested), so training threads take turns at the fused forward.
_FORWARD_AD_LOCK = threading.Lock()


def _labeled_gradient(
    model: nn.Module, labeled_loss: torch.Tensor
) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    """The trainable parameters' names, tensors and g_lab (zeros where the loss has none)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(labeled_loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    return names, params, grads


def losses_and_alignment(
    model: nn.Module,
    labeled_loss: torch.Tensor,
    losses_at: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-example losses at the current parameters, with their graph for the backward
    that trains, and g_lab . grad l_i for every example i, exact, from the same forward.

    `losses_at(params)` computes the losses with `params` substituted into `model`; it gets
    each trainable parameter carrying g_lab as its forward-mode tangent.
    """
    names, params, grads = _labeled_gradient(model, labeled_loss)
    with _FORWARD_AD_LOCK, forward_ad.dual_level(), warnings.catch_warnings():
        # torch scripts its forward-AD decompositions on first use, with a warning that
        # TorchScript is deprecated; that is torch's own business, not the caller's.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
        duals = {
            name: forward_ad.make_dual(p, g.detach())
            for name, p, g in zip(names, params, grads, strict=True)
        }
        losses, tangent = forward_ad.unpack_dual(losses_at(duals))
    alignment = torch.zeros_like(losses) if tangent is None else tangent.detach()
    return losses, alignment


def gradient_alignment(
    model: nn.Module,
    labeled_loss: torch.Tensor,
    example_losses: torch.Tensor,
    losses_at: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    epsilon: float,
) -> torch.Tensor:
    """g_lab . grad l_i for every example i, by a forward finite difference along g_lab.

    `losses_at(params)` recomputes the per-example losses with `params` substituted into
    `model`; `example_losses` are the same losses at the current parameters. The step moves the
    parameters by `epsilon` (Euclidean) along g_lab.
    """
    names, params, grads = _labeled_gradient(model, labeled_loss)
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    if norm == 0.0:
        return torch.zeros_like(example_losses)
    scale = epsilon / norm
    shifted = {
        name: (p + scale * g).detach() for name, p, g in zip(names, params, grads, strict=True)
    }
    with torch.no_grad():
        moved = losses_at(shifted)
    return (moved - example_losses.detach()) / scale


def meta_weights(alignment: torch.Tensor) -> torch.Tensor:
    """Ren et al.'s weights: clip negatives to zero, normalise to sum 1 (all zero stays zero)."""
    weights = alignment.clamp(min=0.0)
    total = weights.sum()
    return weights / total if total > 0 else weights


def class_balanced(
    weights: torch.Tensor, predicted: torch.Tensor, predicted_counts: torch.Tensor
) -> torch.Tensor:
    """Divide each weight by the share of its pseudo-label among the teacher's predictions so far,
    keeping the weights' total: a teacher that favours one class would otherwise pass that bias
    on to the student, session after session."""
    shares = predicted_counts / predicted_counts.sum()
    scaled = weights / shares[predicted]
    total = scaled.sum()
    return scaled * (weights.sum() / total) if total > 0 else scaled
