"""The texts of one predict request, checked against the limits and the task before batching.

Here rather than in the API package because the predictor checks them once it knows the task
(a pair task needs `text_b`), after the registry read; the rules themselves are list_core's.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from list_core.field_error import FieldError
from list_core.validation import check_count, check_text


class PairText(Protocol):
    """An input of a pair task: `{"text", "text_b"}`."""

    text: str
    text_b: str | None


@dataclass(frozen=True)
class PredictRow:
    text: str
    text_b: str | None


def validate_inputs(
    inputs: Sequence[str | PairText], max_inputs: int, max_chars: int, uses_text_b: bool
) -> list[PredictRow]:
    """One row per input, or a `FieldError` naming the first input that cannot be served."""
    if not inputs:
        raise FieldError("inputs", "give at least one input")
    check_count("inputs", len(inputs), max_inputs)
    rows = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            text, text_b, text_field = item, None, f"inputs[{index}]"
        else:
            text, text_b, text_field = item.text, item.text_b, f"inputs[{index}].text"
        check_text(text_field, text, max_chars)
        if text_b is not None:
            check_text(f"inputs[{index}].text_b", text_b, max_chars)
        elif uses_text_b:
            raise FieldError(
                f"inputs[{index}]", 'this task is a pair task: send {"text", "text_b"}'
            )
        rows.append(PredictRow(text, text_b))
    return rows
