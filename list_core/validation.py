"""The checks a training set passes before any step runs, shared by `train_task` and the API.

The engine calls them without limits; the API passes its configured character limit and adds
only what needs settings or the running backbone (`service/api/validation.py`), so both refuse
the same examples naming the same field with the same message.
"""

import reprlib
from collections.abc import Sequence

from list_core.data import Example
from list_core.field_error import FieldError
from list_core.prompts import TaskSpec


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or tokenized, or None. JSON can carry a NUL (PostgreSQL
    text cannot hold one) and an unpaired UTF-16 surrogate such as `"\\ud800"` (not encodable
    as UTF-8, so no tokenizer, database or JSON response can take it)."""
    if "\x00" in value:
        return f"contains a NUL character (U+0000) at index {value.index(chr(0))}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains an unpaired surrogate at index {error.start}; send valid Unicode"
    return None


def check_text(field: str, text: str, max_chars: int | None = None) -> None:
    """Storable (`text_problem`), not blank, and no longer than `max_chars` when there is a
    limit."""
    problem = text_problem(text)
    if problem is not None:
        raise FieldError(field, problem)
    if not text.strip():
        raise FieldError(field, "must not be empty")
    if max_chars is not None and len(text) > max_chars:
        raise FieldError(field, f"at most {max_chars} characters allowed, got {len(text)}")


def check_count(field: str, count: int, limit: int) -> None:
    """At most `limit` items in the list `field`."""
    if count > limit:
        raise FieldError(field, f"at most {limit} items allowed, got {count}")


def validate_labelled(
    field: str, spec: TaskSpec, examples: Sequence[Example], max_chars: int | None = None
) -> None:
    """Each example has a text, one of the task's labels, and a text_b wherever the template
    uses one; `field` names the list (`examples`, `evaluation`) in the errors."""
    for index, example in enumerate(examples):
        where = f"{field}[{index}]"
        check_text(f"{where}.text", example.text, max_chars)
        if example.label not in spec.labels:
            raise FieldError(
                f"{where}.label", f"{reprlib.repr(example.label)} is not one of {list(spec.labels)}"
            )
        _check_text_b(where, example, spec, max_chars)


def validate_examples(
    spec: TaskSpec, examples: Sequence[Example], max_chars: int | None = None
) -> None:
    """The labelled training set: every example valid, and at least one for each label."""
    validate_labelled("examples", spec, examples, max_chars)
    check_coverage(spec, {example.label for example in examples})


def check_coverage(spec: TaskSpec, present: set[str | None]) -> None:
    """At least one labelled example for each of the task's labels."""
    missing = [label for label in spec.labels if label not in present]
    if missing:
        raise FieldError("examples", f"each label needs an example; none for {missing}")


def validate_unlabeled(
    spec: TaskSpec, unlabeled: Sequence[Example], max_chars: int | None = None
) -> None:
    """The pool self-training draws from: no blank texts, text_b where the template uses it."""
    for index, example in enumerate(unlabeled):
        where = f"unlabeled[{index}]"
        check_text(where, example.text, max_chars)
        _check_text_b(where, example, spec, max_chars)


def _check_text_b(where: str, example: Example, spec: TaskSpec, max_chars: int | None) -> None:
    if example.text_b is not None:
        check_text(f"{where}.text_b", example.text_b, max_chars)
    elif spec.uses_text_b:
        raise FieldError(f"{where}.text_b", "required: the template uses {text_b}")
