"""LiST's self-training must add something over prompt tuning on the same few labels.

Synthetic task: two keywords per class appear in the labelled set ("known"), two never do
("unknown"). Unlabelled sentences pair a known with an unknown keyword of the same class, so a
teacher that learned the known words can teach the student the unknown ones. Prompt tuning on the
labels alone cannot learn them. The margin is asserted as a mean over seeds, not one lucky run.
"""

import random

import pytest

from list_core.backbone import load_backbone
from list_core.data import Example
from list_core.prompts import TaskSpec
from list_core.training import evaluate_accuracy, train_task
from tests.tiny_models import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS, build_tiny_bert

KNOWN = {"pos": POSITIVE_WORDS[:2], "neg": NEGATIVE_WORDS[:2]}
UNKNOWN = {"pos": POSITIVE_WORDS[2:4], "neg": NEGATIVE_WORDS[2:4]}
SCHEDULE = {
    "budget": "fast",
    "teacher_steps": 200,
    "teacher_lr": 1e-2,
    "student_lr": 1e-2,
    "sessions": 2,
    "unlabeled_steps": 150,
    "labeled_steps": 30,
    "bottleneck": 16,
}


def _sentence(rng: random.Random, keywords: list[str]) -> str:
    words = rng.choices(FILLER_WORDS, k=rng.randint(1, 3)) + keywords
    rng.shuffle(words)
    return " ".join(words)


def _task(seed: int) -> tuple[list[Example], list[str], list[Example]]:
    rng = random.Random(seed)
    labeled = [
        Example(_sentence(rng, [rng.choice(KNOWN[label])]), label)
        for label in ("pos", "neg")
        for _ in range(12)
    ]
    unlabeled = []
    for _ in range(600):
        label = rng.choice(["pos", "neg"])
        unlabeled.append(_sentence(rng, [rng.choice(KNOWN[label]), rng.choice(UNKNOWN[label])]))
    test = [
        Example(_sentence(rng, [rng.choice(KNOWN[label] + UNKNOWN[label])]), label)
        for _ in range(100)
        for label in ("pos", "neg")
    ]
    return labeled, unlabeled, test


@pytest.mark.slow
def test_list_beats_prompt_with_unlabelled_data(tmp_path):
    backbone = load_backbone(str(build_tiny_bert(tmp_path / "encoder", mlm_head=False)), "cpu")
    spec = TaskSpec.create(["neg", "pos"], None, {"neg": "terrible", "pos": "great"})
    margins = []
    for seed in (1, 2, 3):
        labeled, unlabeled, test = _task(seed)
        scores = {}
        for method in ("prompt", "list"):
            result = train_task(
                backbone, spec, labeled, unlabeled, method, {**SCHEDULE, "seed": seed}
            )
            scores[method] = evaluate_accuracy(backbone, result.model, test)
        margins.append(scores["list"] - scores["prompt"])
    assert sum(margins) / len(margins) >= 0.03, margins
    assert sum(m > 0 for m in margins) >= 2, margins
