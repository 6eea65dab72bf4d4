"""The few-shot protocol: task definitions and the K-labels / unlabelled / test split.

A split depends only on (task, K, seed, cap), so every method run with the same seed sees the
same labelled examples and the same unlabelled pool: method comparisons are paired.
"""

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from list_core.data import Example, read_jsonl
from list_core.prompts import TaskSpec

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Task:
    """One benchmark task: its prompt spec, its train pool and its test set."""

    name: str
    spec: TaskSpec
    train: tuple[Example, ...]
    test: tuple[Example, ...]


@dataclass(frozen=True)
class Split:
    """K labelled examples and the unlabelled pool drawn from the rest of the train pool.

    `unlabeled` keeps the gold labels only so pseudo-label accuracy can be reported; training
    gets `unlabeled_texts()`, which has none.
    """

    labeled: tuple[Example, ...]
    unlabeled: tuple[Example, ...]

    def unlabeled_texts(self) -> list[str]:
        return [example.text for example in self.unlabeled]


def task_names(data_dir: Path = DATA_DIR) -> list[str]:
    return list(json.loads((data_dir / "tasks.json").read_text(encoding="utf-8")))


def load_task(name: str, data_dir: Path = DATA_DIR) -> Task:
    """Read a task's config from tasks.json and its train/test JSONL files."""
    config = json.loads((data_dir / "tasks.json").read_text(encoding="utf-8"))
    if name not in config:
        raise ValueError(f"unknown task {name!r}; known: {sorted(config)}")
    entry = config[name]
    labels = list(entry["labels"])
    spec = TaskSpec.create(
        labels, entry["template"], dict(zip(labels, entry["verbalizer"], strict=True))
    )
    train = tuple(read_jsonl(data_dir / name / "train.jsonl"))
    test = tuple(read_jsonl(data_dir / name / "test.jsonl"))
    return Task(name, spec, train, test)


def with_text(pool: Sequence[Example]) -> list[Example]:
    """The examples that can be trained on: blank texts (2 in cr's pool, 3 in mpqa's) cannot."""
    return [example for example in pool if example.text.strip()]


def draw_split(
    train: tuple[Example, ...] | list[Example],
    labels: tuple[str, ...] | list[str],
    k: int,
    seed: int,
    unlabeled_cap: int | None = None,
) -> Split:
    """K labelled examples at random with at least one per label; the rest is unlabelled.

    The pool is shuffled with `seed`; the first example of each label is taken, then the next
    ones in shuffled order until there are K. The unlabelled pool is the remainder in the same
    shuffled order, cut to `unlabeled_cap` when given. Examples with blank text are skipped.
    """
    if k < len(labels):
        raise ValueError(f"k={k} is smaller than the number of labels ({len(labels)})")
    if k > len(train):
        raise ValueError(f"k={k} exceeds the train pool ({len(train)} examples)")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    # Blank texts can be neither a label nor an unlabelled text (see `with_text`); dropping
    # them after the shuffle leaves every other example's draw unchanged.
    order = [i for i in order if train[i].text.strip()]
    chosen: list[int] = []
    for label in labels:
        first = next((i for i in order if train[i].label == label), None)
        if first is None:
            raise ValueError(f"the train pool has no example labelled {label!r}")
        chosen.append(first)
    taken = set(chosen)
    for index in order:
        if len(chosen) == k:
            break
        if index not in taken:
            chosen.append(index)
            taken.add(index)
    rest = [i for i in order if i not in taken]
    if unlabeled_cap is not None:
        rest = rest[:unlabeled_cap]
    return Split(
        labeled=tuple(train[i] for i in chosen),
        unlabeled=tuple(train[i] for i in rest),
    )
