"""Examples and JSONL reading shared by training, prediction and the CLI."""

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    """One text (or text pair), with a label when it is labelled."""

    text: str
    label: str | None = None
    text_b: str | None = None


def read_jsonl(path: str | Path) -> list[Example]:
    """Read `{"text", "label"?, "text_b"?}` lines; fail with the line number on bad input."""
    return [example for _, example in read_jsonl_records(path)]


def read_jsonl_records(path: str | Path) -> list[tuple[dict, Example]]:
    """Each line as read (every field kept, for outputs that echo it) and as an `Example`."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: invalid JSON ({error.msg})") from error
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{number}: each line needs a string field 'text'")
            label = record.get("label")
            example = Example(
                text=record["text"],
                label=None if label is None else str(label),
                text_b=record.get("text_b"),
            )
            rows.append((record, example))
    return rows
