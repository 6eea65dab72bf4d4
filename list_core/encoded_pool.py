"""The unlabelled pool of one training job, each row tokenised once, and a session teacher's
pseudo-labels, each computed once.

Why: self-training draws its batches with replacement, so the same texts come back: 300 draws
of 16 from a 2,000-text pool hold ~1,400 distinct texts per session. A row's tokens do not
change during a job (its models all encode alike), and within a session neither does the
teacher's verdict on a row (the teacher runs in eval mode: no dropout), so both are kept by
pool index. Rows are tokenised on their first draw, not all at once, so a job over a large
pool never tokenises texts it does not draw.
"""

from collections.abc import Callable, Sequence

import torch

from list_core.data import Example
from list_core.prompts import EncodedRow

Encode = Callable[[list[str], list[str | None]], list[EncodedRow]]
Probabilities = Callable[[list[EncodedRow]], torch.Tensor]


def _first_positions(indices: Sequence[int], known: dict) -> dict[int, int]:
    """Each index not in `known`, with the position of its first appearance in `indices`."""
    missing: dict[int, int] = {}
    for position, index in enumerate(indices):
        if index not in known and index not in missing:
            missing[index] = position
    return missing


class EncodedPool:
    """The pool's encoded rows by index, each encoded on its first request."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = examples
        self._rows: dict[int, EncodedRow] = {}

    def rows(self, indices: Sequence[int], encode: Encode) -> list[EncodedRow]:
        """The rows at `indices` (repeats allowed); the new ones encoded in one `encode` call.
        Every call of a job passes an encoder that encodes alike (its models share one)."""
        missing = list(_first_positions(indices, self._rows))
        if missing:
            texts = [self.examples[i].text for i in missing]
            texts_b = [self.examples[i].text_b for i in missing]
            self._rows.update(zip(missing, encode(texts, texts_b), strict=True))
        return [self._rows[i] for i in indices]


class TeacherLabels:
    """One session teacher's label probabilities by pool index, each row computed once (in one
    forward with the other new rows of its batch)."""

    def __init__(self, probabilities: Probabilities) -> None:
        self.probabilities = probabilities
        self._known: dict[int, torch.Tensor] = {}

    def __call__(self, indices: Sequence[int], rows: Sequence[EncodedRow]) -> torch.Tensor:
        """[len(indices), labels] probabilities of `rows` (pool rows `indices`), in order."""
        missing = _first_positions(indices, self._known)
        if missing:
            computed = self.probabilities([rows[position] for position in missing.values()])
            self._known.update(zip(missing, computed, strict=True))
        return torch.stack([self._known[i] for i in indices])
