"""What to label next: most uncertain first, each label in turn, no near duplicates."""

import pytest

from list_core.suggestions import jaccard, normalise, shingle, suggest

LABELS = ["pos", "neg", "neutral"]


def test_the_most_uncertain_of_each_predicted_label_take_turns() -> None:
    texts = ["t0", "t1", "t2", "t3", "t4", "t5"]
    probabilities = [
        [0.90, 0.05, 0.05],  # pos, sure
        [0.50, 0.45, 0.05],  # pos, a near tie
        [0.10, 0.80, 0.10],  # neg
        [0.40, 0.42, 0.18],  # neg, a near tie
        [0.05, 0.05, 0.90],  # neutral, sure: still gets its turn
        [0.45, 0.10, 0.45],  # a tie: the most uncertain of all
    ]
    picks = suggest(texts, probabilities, LABELS, limit=5)
    assert [p.index for p in picks] == [5, 3, 4, 1, 2]
    assert picks[0].uncertainty == pytest.approx(1.0)
    assert picks[1].uncertainty == pytest.approx(1 - (0.42 - 0.40))
    assert picks[2].label == "neutral" and picks[2].scores["neutral"] == 0.90


def test_copies_and_near_copies_are_skipped() -> None:
    texts = ["Great film!", "great   film!", "GREAT FILM", "Great film!!", "something else"]
    probabilities = [[0.5, 0.5, 0.0]] * 4 + [[0.9, 0.1, 0.0]]
    picks = suggest(texts, probabilities, LABELS, limit=5)
    assert [texts[p.index] for p in picks] == ["Great film!", "something else"]


def test_limit_and_empty_pool() -> None:
    assert suggest([], [], LABELS, limit=3) == []
    picks = suggest(["a", "b", "c"], [[0.5, 0.5, 0.0]] * 3, LABELS, limit=2)
    assert [p.index for p in picks] == [0, 1]  # ties keep the pool's order
    with pytest.raises(ValueError, match="2 texts but 1"):
        suggest(["a", "b"], [[1.0, 0.0, 0.0]], LABELS, limit=1)


def test_the_similarity_it_skips_by() -> None:
    assert normalise("  Café\u0301  AU  lait ") == normalise("café\u0301 au lait")
    assert jaccard(shingle("good film"), shingle("good film!")) >= 0.8
    assert jaccard(shingle("good film"), shingle("bad ending")) < 0.2
