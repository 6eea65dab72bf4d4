"""Whether a retrained version replaces the one the task serves (`promote` policy).

`if_better` compares the two on the task's evaluation set as it is now: the new version's
accuracy from training, the served version's measured here on the same examples with the same
full-precision backbone (its stored figure may be from a smaller evaluation set). Not worse is
enough: a tie promotes, so newer data wins when the evaluation cannot tell them apart. Without
an evaluation set there is nothing to compare on, and the new version is served. The decision,
with both accuracies, becomes the job's `promotion` event (`register_adapter`).
"""

from dataclasses import dataclass

from list_core.artifact import AdapterMismatchError
from list_core.data import Example
from list_core.training import TrainingResult, evaluate_accuracy
from service.jobs.context import JobContext
from service.registry.states import JOB_RETRAIN, PROMOTE_ALWAYS
from service.store import AdapterIntegrityError


@dataclass(frozen=True)
class ServedVersion:
    """The version the task served when the job started."""

    version: int
    path: str
    sha256: str


def decide(
    context: JobContext,
    kind: str,
    policy: str | None,
    served: ServedVersion | None,
    evaluation: list[Example],
    result: TrainingResult,
) -> dict | None:
    """The promotion decision of a retrain (None for a task's first training, always served)."""
    if kind != JOB_RETRAIN:
        return None
    decision = {"policy": policy, "serving_version": served.version if served else None}
    if served is None:
        return {**decision, "promoted": True, "reason": "the task served no version yet"}
    if policy == PROMOTE_ALWAYS:
        return {**decision, "promoted": True, "reason": "policy is always"}
    if not evaluation:
        return {**decision, "promoted": True, "reason": "no evaluation set to compare on"}
    backbone = context.backbone()
    try:
        current = context.store.load(served.path, served.sha256, backbone)
    except (OSError, AdapterIntegrityError, AdapterMismatchError) as error:
        reason = f"the served version could not be loaded ({type(error).__name__}); replaced"
        return {**decision, "promoted": True, "reason": reason}
    serving_accuracy = evaluate_accuracy(backbone, current, evaluation)
    new_accuracy = result.metrics["evaluation_accuracy"]
    promoted = new_accuracy >= serving_accuracy
    return {
        **decision,
        "promoted": promoted,
        "new_accuracy": new_accuracy,
        "serving_accuracy": serving_accuracy,
        "evaluation_examples": len(evaluation),
        "reason": "not worse on the evaluation set"
        if promoted
        else "worse on the evaluation set: the served version keeps serving",
    }
