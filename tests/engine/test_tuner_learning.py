"""Every tuner learns the synthetic keyword task on the tiny BERT (no MLM head, so the prompt
similarity head): sentences whose class is told by one keyword among filler words. Asserted
as a margin over the untrained model's accuracy, averaged over seeds, not one lucky run.

The tiny encoder runs on one torch thread here: with two, its thread hand-offs beside the
other tests' work made each of these runs ~20 times slower."""

import random

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.data import Example
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from list_core.training import evaluate_accuracy, train_task
from list_core.tuners.linear.config import LinearConfig
from list_core.tuners.registry import TUNERS
from tests.tiny_models import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS, build_tiny_bert

KEYWORDS = {"pos": POSITIVE_WORDS[:2], "neg": NEGATIVE_WORDS[:2]}
SCHEDULE = {
    "budget": "fast",
    "teacher_steps": 300,
    "teacher_lr": 1e-2,
    "bottleneck": 8,
    "prefix_length": 4,
    "prompt_length": 4,
}
SEEDS = (1, 2, 3)
SPEC = TaskSpec.create(["neg", "pos"], None, {"neg": "terrible", "pos": "great"})


def _sentence(rng: random.Random, label: str) -> str:
    words = [*rng.choices(FILLER_WORDS, k=rng.randint(1, 3)), rng.choice(KEYWORDS[label])]
    rng.shuffle(words)
    return " ".join(words)


def _task(seed: int) -> tuple[list[Example], list[Example]]:
    rng = random.Random(seed)
    labeled = [Example(_sentence(rng, label), label) for label in ("pos", "neg") for _ in range(12)]
    test = [Example(_sentence(rng, label), label) for _ in range(60) for label in ("pos", "neg")]
    return labeled, test


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = build_tiny_bert(tmp_path_factory.mktemp("keyword-bert"), mlm_head=False)
    yield load_backbone(str(folder), "cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def untrained(backbone) -> float:
    """The mean accuracy of the prompt similarity head before any training (zero-shot)."""
    model = TaskModel(backbone, SPEC, "prompt", LinearConfig(), 64).eval()
    return sum(evaluate_accuracy(backbone, model, _task(seed)[1]) for seed in SEEDS) / len(SEEDS)


@pytest.mark.slow
@pytest.mark.parametrize("tuner", TUNERS)
def test_every_tuner_learns_the_keyword_task(backbone, untrained, tuner):
    scores = []
    for seed in SEEDS:
        labeled, test = _task(seed)
        result = train_task(
            backbone, SPEC, labeled, [], "prompt", {**SCHEDULE, "seed": seed}, tuner=tuner
        )
        scores.append(evaluate_accuracy(backbone, result.model, test))
    assert sum(scores) / len(scores) >= max(untrained + 0.15, 0.72), (untrained, scores)
    assert min(scores) >= 0.6, scores
