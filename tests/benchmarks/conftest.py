"""A tiny few-shot data folder in the benchmark's layout, over the tiny models' vocabulary."""

import json
import random
from pathlib import Path

import pytest

from tests.tiny_models import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS

TINY_STEPS = [
    "--threads",
    "1",
    "--set",
    "teacher_steps=3",
    "--set",
    "sessions=2",
    "--set",
    "unlabeled_steps=3",
    "--set",
    "labeled_steps=2",
    "--set",
    "bottleneck=4",
]


def _sentence(rng: random.Random, label: str) -> str:
    words = {"positive": POSITIVE_WORDS, "negative": NEGATIVE_WORDS}.get(label, ["okay"])
    return " ".join([*rng.choices(FILLER_WORDS, k=3), rng.choice(words)])


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def build_data(folder: Path) -> Path:
    """Two tasks: `sst-2` (2 labels) and `three` (3 labels, 'neutral' rare in the pool)."""
    rng = random.Random(0)
    tasks = {
        "sst-2": {
            "labels": ["negative", "positive"],
            "template": "{text} It was {mask} .",
            "verbalizer": ["terrible", "great"],
        },
        "three": {
            "labels": ["negative", "neutral", "positive"],
            "template": "{text} It was {mask} .",
            "verbalizer": ["bad", "okay", "good"],
        },
    }
    for name, spec in tasks.items():
        for split, size in (("train", 60), ("test", 20)):
            labels = ["negative", "positive"] * (size // 2)
            if name == "three":
                labels[0] = "neutral"  # exactly one per split: sampling must still find it
            rows = [{"text": _sentence(rng, label), "label": label} for label in labels]
            _write(folder / name / f"{split}.jsonl", rows)
        spec["sizes"] = {"train": 60, "test": 20}
    (folder / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_data(tmp_path_factory.mktemp("bench-data"))
