"""The few-shot split: K labels with every label present, the rest unlabelled, per seed."""

from collections import Counter

import pytest

from benchmarks.harness.fewshot import draw_split, load_task, task_names, with_text
from list_core.data import Example


def _pool(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label} {i}", label) for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize("seed", range(1, 21))
def test_every_label_drawn_even_when_rare(seed):
    pool = _pool({"a": 500, "b": 300, "rare": 1})
    split = draw_split(pool, ("a", "b", "rare"), k=30, seed=seed)
    counts = Counter(e.label for e in split.labeled)
    assert len(split.labeled) == 30
    assert counts["rare"] == 1 and counts["a"] >= 1 and counts["b"] >= 1


def test_split_partitions_the_pool_and_hides_labels():
    pool = _pool({"a": 40, "b": 40})
    split = draw_split(pool, ("a", "b"), k=10, seed=3)
    labeled = {e.text for e in split.labeled}
    unlabeled = split.unlabeled_texts()
    assert len(labeled) == 10 and not labeled & set(unlabeled)
    assert sorted(labeled | set(unlabeled)) == sorted(e.text for e in pool)
    assert all(isinstance(text, str) for text in unlabeled)


def test_split_is_fixed_per_seed_and_varies_across_seeds():
    pool = _pool({"a": 100, "b": 100})
    first = draw_split(pool, ("a", "b"), 30, seed=1)
    assert draw_split(pool, ("a", "b"), 30, seed=1) == first
    assert draw_split(pool, ("a", "b"), 30, seed=2).labeled != first.labeled


def test_unlabeled_cap_keeps_a_prefix_of_the_same_order():
    pool = _pool({"a": 100, "b": 100})
    capped = draw_split(pool, ("a", "b"), 30, seed=4, unlabeled_cap=50)
    full = draw_split(pool, ("a", "b"), 30, seed=4)
    assert capped.labeled == full.labeled
    assert capped.unlabeled == full.unlabeled[:50]


@pytest.mark.parametrize(
    ("k", "labels", "message"),
    [(1, ("a", "b"), "smaller than the number of labels"), (30, ("a", "c"), "no example")],
)
def test_impossible_splits_are_refused(k, labels, message):
    with pytest.raises(ValueError, match=message):
        draw_split(_pool({"a": 20, "b": 20}), labels, k, seed=1)


def test_shipped_data_has_the_seven_tasks_with_label_words():
    assert set(task_names()) == {"sst-2", "sst-5", "mr", "cr", "mpqa", "subj", "trec"}
    trec = load_task("trec")
    assert len(trec.spec.labels) == 6 and len(trec.test) == 500
    assert trec.spec.label_words["human"] == "Human"
    assert {e.label for e in trec.train} == set(trec.spec.labels)


def test_blank_texts_are_skipped_without_changing_the_rest_of_the_draw():
    pool = _pool({"a": 40, "b": 40})
    with_blanks = [*pool, Example("", "a"), Example("   ", "b")]
    for seed in range(1, 6):
        split = draw_split(with_blanks, ("a", "b"), 30, seed=seed)
        texts = [e.text for e in split.labeled] + split.unlabeled_texts()
        assert len(texts) == 80 and all(text.strip() for text in texts)


def test_full_data_rows_train_on_every_example_with_text():
    pool = [Example("good", "a"), Example("", "b"), Example("bad", "b"), Example(" \n", "a")]
    assert with_text(pool) == [pool[0], pool[2]]
    cr = load_task("cr")
    blanks = [example for example in cr.train if not example.text.strip()]
    assert blanks and len(with_text(cr.train)) == len(cr.train) - len(blanks)
