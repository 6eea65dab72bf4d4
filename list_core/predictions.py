"""The output of `listserve predict`, whether scored here or by a running server: each input
line as it was (its gold `label` included) with `prediction`, `score` and `scores` beside it,
and one summary line when every input carries a gold label."""

import json
from collections.abc import Sequence
from pathlib import Path

from list_core.metrics import accuracy, macro_f1


def prediction_record(record: dict, labels: Sequence[str], probabilities: Sequence[float]) -> dict:
    """The input record plus the predicted label, its probability and every label's."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        **record,
        "prediction": labels[best],
        "score": probabilities[best],
        "scores": dict(zip(labels, probabilities, strict=True)),
    }


def write_predictions(path: str | Path, records: Sequence[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def summary_line(records: Sequence[dict], labels: Sequence[str]) -> str | None:
    """`examples=N accuracy=... macro_f1=...` when every record has a gold label, else None."""
    gold = [record.get("label") for record in records]
    if not records or any(label is None for label in gold):
        return None
    gold = [str(label) for label in gold]
    predicted = [record["prediction"] for record in records]
    return (
        f"examples={len(records)} accuracy={accuracy(gold, predicted):.4f} "
        f"macro_f1={macro_f1(gold, predicted, labels):.4f}"
    )
