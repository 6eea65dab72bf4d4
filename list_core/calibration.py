"""Calibrated scores: a temperature (and a prior/trained blend weight) fit on out-of-fold
logits, and the expected calibration error that says whether a `score` means what it says.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides a
model's logits by one scalar T fit by negative log-likelihood on held-out predictions; it never
changes the arg-max, so accuracy is untouched. Here the held-out predictions are the
cross-validation folds' (`list_core.selection`): no dev set exists in the few-shot protocol.
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

ECE_BINS = 15
# Inverse temperatures searched: T from 1/50 to 1/0.02, wide enough for a head fit to a loss
# of 1e-5 (over-confident) and for an untrained similarity head (under-confident).
_LOG_BETA_RANGE = (math.log(0.02), math.log(50.0))
BLEND_WEIGHTS = tuple(step / 10 for step in range(11))


@dataclass(frozen=True)
class Calibration:
    """How the served logits are formed: `beta * (weight * trained + (1 - weight) * prior)`.
    `weight` is 1 without a prior blend; the temperature is `1 / beta`."""

    beta: float = 1.0
    weight: float = 1.0

    @property
    def temperature(self) -> float:
        return 1.0 / self.beta

    def logits(self, trained: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        if prior is None or self.weight == 1.0:
            return self.beta * trained
        return self.beta * (self.weight * trained + (1.0 - self.weight) * prior)

    def as_dict(self) -> dict:
        return {"temperature": round(self.temperature, 6), "prior_weight": 1.0 - self.weight}


def negative_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return F.cross_entropy(logits.double(), targets).item()


def fit_beta(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The inverse temperature minimising the NLL of `logits / T`: golden-section search over
    log(1/T). The NLL is convex in 1/T, hence unimodal in its log, so the search finds the
    minimum of the range (deterministic; no optimiser state, no scipy)."""
    logits = logits.double()

    def loss(log_beta: float) -> float:
        return F.cross_entropy(math.exp(log_beta) * logits, targets).item()

    return math.exp(_golden_minimum(loss, *_LOG_BETA_RANGE))


def fit_blend(
    trained: torch.Tensor, prior: torch.Tensor, targets: torch.Tensor
) -> tuple[Calibration, float]:
    """The blend weight (on a grid of tenths) and temperature with the lowest NLL, and that NLL."""
    best: tuple[Calibration, float] | None = None
    for weight in BLEND_WEIGHTS:
        mixed = weight * trained + (1.0 - weight) * prior
        beta = fit_beta(mixed, targets)
        loss = negative_log_likelihood(beta * mixed, targets)
        if best is None or loss < best[1] - 1e-12:
            best = (Calibration(beta, weight), loss)
    assert best is not None
    return best


def expected_calibration_error(
    probabilities: torch.Tensor, targets: torch.Tensor, bins: int = ECE_BINS
) -> float:
    """ECE: the gap between confidence (the top probability, the served `score`) and accuracy,
    averaged over equal-width confidence bins weighted by how many rows fall in each."""
    if len(targets) == 0:
        return 0.0
    confidence, predicted = probabilities.max(dim=-1)
    correct = (predicted == targets).double()
    confidence = confidence.double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    total = 0.0
    for low, high in itertools.pairwise(edges.tolist()):
        inside = (confidence > low) & (confidence <= high)
        if low == 0.0:
            inside |= confidence == 0.0
        count = int(inside.sum())
        if count:
            gap = (confidence[inside].mean() - correct[inside].mean()).abs().item()
            total += gap * count
    return total / len(targets)


def _golden_minimum(function: Callable[[float], float], low: float, high: float) -> float:
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = function(c), function(d)
    for _ in range(60):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = function(d)
    return (a + b) / 2.0
