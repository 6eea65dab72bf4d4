"""Growing a task's texts after creation: more examples, and labels fed back from production.

The caller holds the task's row lock (`tasks.lock_task`) and has validated the combined data,
so these only write. JSON columns are replaced, never mutated in place, so the ORM sees the
change. A labelled record from feedback carries `"source": "feedback"`; the job reads `text`,
`label` and `text_b` only.
"""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.registry.models import TaskData

FEEDBACK = "feedback"


@dataclass(frozen=True)
class DataCounts:
    examples: int
    unlabeled: int
    evaluation: int
    feedback: int


def counts(data: TaskData) -> DataCounts:
    return DataCounts(
        examples=len(data.examples),
        unlabeled=len(data.unlabeled),
        evaluation=len(data.evaluation),
        feedback=sum(1 for record in data.examples if record.get("source") == FEEDBACK),
    )


def append_data(
    session: Session,
    data: TaskData,
    examples: list[dict],
    unlabeled: list[str],
    evaluation: list[dict],
) -> DataCounts:
    data.examples = [*data.examples, *examples]
    data.unlabeled = [*data.unlabeled, *unlabeled]
    data.evaluation = [*data.evaluation, *evaluation]
    session.flush()
    return counts(data)


def find_labelled(data: TaskData, text: str, text_b: str | None) -> int | None:
    """The position of the labelled example with exactly this text (and text_b), if any."""
    for index, record in enumerate(data.examples):
        if record["text"] == text and record.get("text_b") == text_b:
            return index
    return None


def upsert_feedback(session: Session, data: TaskData, record: dict) -> bool:
    """Store a corrected label: it replaces the label of an example with the same text (the
    newest word on a text wins), or is appended. True when it replaced one."""
    stored = {**record, "source": FEEDBACK}
    index = find_labelled(data, record["text"], record.get("text_b"))
    examples = list(data.examples)
    if index is None:
        examples.append(stored)
    else:
        examples[index] = stored
    data.examples = examples
    session.flush()
    return index is not None
