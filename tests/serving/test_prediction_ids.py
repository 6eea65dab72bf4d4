"""Prediction ids carry their text, signed for one task, and expire."""

import pytest

from service.serving import prediction_ids
from service.serving.prediction_ids import InvalidPredictionId

KEY, OTHER_KEY = "ab" * 32, "cd" * 32
TTL = 3600.0


def test_an_id_gives_back_its_text_version_and_label() -> None:
    for text, text_b in [("short", None), ("é ü 漢字 " * 300, None), ("a man plays", "someone")]:
        token = prediction_ids.issue(KEY, "tsk_1", 3, 1, text, text_b, now=1000.0)
        assert token.startswith("prd_") and token.isascii() and "=" not in token
        found = prediction_ids.read(KEY, "tsk_1", token, TTL, now=1001.0)
        assert (found.text, found.text_b, found.version, found.label_index) == (text, text_b, 3, 1)


def test_a_long_text_is_compressed() -> None:
    text = "the same sentence again. " * 80  # 2,000 characters
    assert len(prediction_ids.issue(KEY, "tsk_1", 1, 0, text, None, now=0.0)) < len(text) // 4


@pytest.mark.parametrize(
    ("key", "task", "now", "reason"),
    [
        (OTHER_KEY, "tsk_1", 10.0, "was not issued for this task"),  # another task's key
        (KEY, "tsk_2", 10.0, "was not issued for this task"),  # same key, another task id
        (KEY, "tsk_1", 10.0 + TTL + 1, "expired"),
    ],
)
def test_an_id_is_refused_for_another_task_and_after_its_ttl(key, task, now, reason) -> None:
    token = prediction_ids.issue(KEY, "tsk_1", 1, 0, "text", None, now=10.0)
    with pytest.raises(InvalidPredictionId, match=reason):
        prediction_ids.read(key, task, token, TTL, now=now)


@pytest.mark.parametrize("token", ["", "prd_", "prd_!!!", "prd_" + "A" * 10, "xyz_abcd"])
def test_garbage_is_refused_with_a_reason(token: str) -> None:
    with pytest.raises(InvalidPredictionId):
        prediction_ids.read(KEY, "tsk_1", token, TTL, now=0.0)


def test_a_changed_byte_breaks_the_tag() -> None:
    token = prediction_ids.issue(KEY, "tsk_1", 1, 0, "a text", None, now=0.0)
    flipped = token[:8] + ("B" if token[8] != "B" else "C") + token[9:]
    with pytest.raises(InvalidPredictionId, match="not issued"):
        prediction_ids.read(KEY, "tsk_1", flipped, TTL, now=0.0)
