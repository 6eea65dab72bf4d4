"""Rows of tasks that blend their trained model with the zero-shot prior (`list_core.selection`
ships such a blend when cross-validation prefers it): the prior's reading of a row is one more
row in the same backbone forward, through the frozen encoder without the task's tuner, scored
by the task's prior head; the two heads' probabilities are then multiplied and renormalised,
which is the softmax of the sum of their logits (`TaskModel.logits` adds them the same way)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from list_core.heads.base import TaskHead
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel
from list_core.tuners.linear.config import LinearConfig
from list_core.tuners.linear.model import HeadOnly
from list_core.tuning import Tuner

# The tuner of every prior row: nothing, so those rows read the shared encoder as it is.
NO_TUNER: Tuner = HeadOnly(LinearConfig())
# log(p) of a probability that underflowed to zero in float32.
_LOG_FLOOR = math.log(1e-45)


@dataclass(eq=False)
class PriorRows:
    """What inference reads of a blended task for its prior rows: the prior head, no tuner."""

    head: TaskHead
    adapters: Tuner = field(default=NO_TUNER)


def with_prior_rows(
    models: Sequence[TaskModel], encoded: Sequence[EncodedRow], adapters: Sequence[Tuner]
) -> tuple[list, list[EncodedRow], list[Tuner], list[int]]:
    """The batch with one more row per row of a blended task (appended, in order), and the
    index of the row each added row reads for."""
    views: dict[int, PriorRows] = {}
    models_out, encoded_out, adapters_out = list(models), list(encoded), list(adapters)
    owners = []
    for index, model in enumerate(models):
        if model.prior_head is None:
            continue
        view = views.setdefault(id(model), PriorRows(model.prior_head))
        models_out.append(view)
        encoded_out.append(encoded[index])
        adapters_out.append(view.adapters)
        owners.append(index)
    return models_out, encoded_out, adapters_out, owners


def combine_prior_rows(probabilities: list[list[float]], owners: list[int]) -> list[list[float]]:
    """Each blended row's probabilities times its prior row's, renormalised (in log space, so
    two near-zero probabilities do not underflow to nothing); the prior rows dropped."""
    count = len(probabilities) - len(owners)
    combined = probabilities[:count]
    for position, owner in enumerate(owners):
        prior = probabilities[count + position]
        logs = [_log(a) + _log(b) for a, b in zip(combined[owner], prior, strict=True)]
        top = max(logs)
        weights = [math.exp(value - top) for value in logs]
        total = sum(weights)
        combined[owner] = [weight / total for weight in weights]
    return combined


def _log(probability: float) -> float:
    return math.log(probability) if probability > 0.0 else _LOG_FLOOR
