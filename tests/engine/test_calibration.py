"""Calibrated scores: ECE, the temperature and the prior blend fit on held-out logits, and the
cross-validated temperature lowering ECE on a held-out set of an over-confident model."""

import random

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.calibration import (
    Calibration,
    expected_calibration_error,
    fit_beta,
    fit_blend,
)
from list_core.data import Example
from list_core.training import train_task
from tests.engine.test_tuner_learning import SPEC, _sentence, _task
from tests.tiny_models import build_tiny_bert


def _calibrated_sample(n: int = 4000, labels: int = 3, seed: int = 0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, labels, generator=generator)
    targets = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
    return logits, targets


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy():
    always_right = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(always_right, torch.tensor([0, 1])) == 0.0
    assert expected_calibration_error(always_right, torch.tensor([1, 0])) == 1.0
    # two rows at 0.9 confidence, one right: |0.9 - 0.5| in one bin holding all rows
    half = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(half, torch.tensor([0, 1])) == pytest.approx(0.4)
    logits, targets = _calibrated_sample()
    assert expected_calibration_error(logits.softmax(-1), targets) < 0.03


@pytest.mark.parametrize("scale", [0.25, 5.0])
def test_the_fitted_temperature_undoes_a_scaling_and_lowers_ece(scale):
    logits, targets = _calibrated_sample()
    distorted = scale * logits  # over-confident (5x) or under-confident (0.25x)
    before = expected_calibration_error(distorted.softmax(-1), targets)
    beta = fit_beta(distorted, targets)
    after = expected_calibration_error((beta * distorted).softmax(-1), targets)
    assert beta == pytest.approx(1.0 / scale, rel=0.1)
    assert before > 0.1 and after < 0.03


def test_the_blend_weight_goes_to_the_informative_logits():
    logits, targets = _calibrated_sample()
    noise = 2.0 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(9))
    toward_trained, _ = fit_blend(logits, noise, targets)
    toward_prior, _ = fit_blend(noise, logits, targets)
    assert toward_trained.weight >= 0.9 and toward_prior.weight <= 0.1
    both = Calibration(beta=2.0, weight=0.5)
    assert torch.allclose(both.logits(logits, noise), logits + noise)
    assert both.as_dict() == {"temperature": 0.5, "prior_weight": 0.5}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = build_tiny_bert(tmp_path_factory.mktemp("calibration-bert"), mlm_head=False)
    yield load_backbone(str(folder), "cpu")
    torch.set_num_threads(threads)


def _noisy(examples: list[Example], seed: int) -> list[Example]:
    """A quarter of the labels flipped: no model can be sure of them, yet an unregularised
    one trained long at a high rate is."""
    rng = random.Random(seed)
    flip = {"pos": "neg", "neg": "pos"}
    return [Example(e.text, flip[e.label] if rng.random() < 0.25 else e.label) for e in examples]


@pytest.mark.slow
def test_the_cross_validated_temperature_lowers_ece_on_held_out_texts(backbone):
    overrides = {
        "budget": "fast",
        "bottleneck": 8,
        "teacher_lr": 3e-2,
        "teacher_steps": 200,
        "selection": "cv",
    }
    gains = []
    for seed in (1, 2, 3):
        labeled, _ = _task(seed)
        rng = random.Random(seed + 10)
        test = [
            Example(_sentence(rng, label), label) for _ in range(300) for label in ("pos", "neg")
        ]
        labeled, test = _noisy(labeled, seed), _noisy(test, seed + 10)
        result = train_task(backbone, SPEC, labeled, [], "prompt", {**overrides, "seed": seed})
        model, temperature = result.model, result.metrics["selection"]["temperature"]
        rows = model.encode([e.text for e in test], [None] * len(test))
        with torch.no_grad():
            served = model.logits_for_rows(backbone, rows)
        targets = torch.tensor([SPEC.labels.index(e.label) for e in test])
        after = expected_calibration_error(served.softmax(-1), targets)
        before = expected_calibration_error((temperature * served).softmax(-1), targets)
        gains.append(before - after)
    # Fit on 24 noisy labels a seed's temperature can miss; on average it must help.
    assert sum(gains) / len(gains) > 0.03, gains
