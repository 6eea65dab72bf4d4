"""What to label next: the unlabelled texts a model is least sure about, spread over its labels
and not near duplicates of each other (margin-based uncertainty sampling).

Uncertainty is one minus the margin between the two most probable labels: a text the model
splits evenly between two labels is worth more than one it is merely unsure about among many
(margin sampling or "breaking ties", Scheffer et al. 2001; a strong query strategy for
fine-tuned transformer classifiers in Schröder et al. 2022). Picks go round the predicted
labels in turn, each label giving its most uncertain text, so a label the model rarely
predicts still gets looked at; a text whose character 4-grams overlap a pick's by
`duplicate_similarity` (Jaccard) or more is skipped, so twenty copies of one tweet do not fill
the list. Pure Python: the service and the benchmark (`benchmarks/active_learning.py`) call
this same function.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

DUPLICATE_SIMILARITY = 0.8
SHINGLE_CHARS = 4
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Suggestion:
    """One text worth labelling: its position in the candidates, the label the model predicts,
    how unsure it is (0 sure .. 1 a tie between the top two labels) and every label's score."""

    index: int
    label: str
    uncertainty: float
    scores: dict[str, float]


def suggest(
    texts: Sequence[str],
    probabilities: Sequence[Sequence[float]],
    labels: Sequence[str],
    limit: int,
    duplicate_similarity: float = DUPLICATE_SIMILARITY,
) -> list[Suggestion]:
    """At most `limit` suggestions, most uncertain first within each label's turn."""
    if len(texts) != len(probabilities):
        raise ValueError(f"{len(texts)} texts but {len(probabilities)} probability rows")
    queues: dict[int, list[Suggestion]] = {}
    for index, row in enumerate(probabilities):
        candidate = _candidate(index, row, labels)
        queues.setdefault(labels.index(candidate.label), []).append(candidate)
    for queue in queues.values():
        queue.sort(key=lambda s: (s.uncertainty, -s.index))  # pop() gives the next best
    order = sorted(queues, key=lambda label: (-queues[label][-1].uncertainty, label))
    chosen: list[Suggestion] = []
    shingles: list[frozenset[str]] = []
    seen: set[str] = set()
    while len(chosen) < limit and any(queues[label] for label in order):
        for label in order:
            picked = _next_distinct(queues[label], texts, seen, shingles, duplicate_similarity)
            if picked is not None:
                chosen.append(picked)
                if len(chosen) == limit:
                    break
    return chosen


def _candidate(index: int, row: Sequence[float], labels: Sequence[str]) -> Suggestion:
    ranked = sorted(range(len(row)), key=lambda i: row[i], reverse=True)
    margin = row[ranked[0]] - (row[ranked[1]] if len(ranked) > 1 else 0.0)
    scores = {label: float(p) for label, p in zip(labels, row, strict=True)}
    return Suggestion(index, labels[ranked[0]], round(1.0 - float(margin), 6), scores)


def _next_distinct(
    queue: list[Suggestion],
    texts: Sequence[str],
    seen: set[str],
    shingles: list[frozenset[str]],
    threshold: float,
) -> Suggestion | None:
    """Pop the queue's best candidate that is neither a copy nor a near copy of a pick."""
    while queue:
        candidate = queue.pop()
        normal = normalise(texts[candidate.index])
        if normal in seen:
            continue
        grams = shingle(normal)
        if any(jaccard(grams, other) >= threshold for other in shingles):
            continue
        seen.add(normal)
        shingles.append(grams)
        return candidate
    return None


def normalise(text: str) -> str:
    """Case, Unicode form and spacing folded: what makes two texts the same text to a person."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingle(normal: str) -> frozenset[str]:
    if len(normal) <= SHINGLE_CHARS:
        return frozenset([normal])
    return frozenset(normal[i : i + SHINGLE_CHARS] for i in range(len(normal) - SHINGLE_CHARS + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
