"""Bodies of the routes a tenant uses after its first model: versions, more data, retraining,
feedback, suggestions and predicting with several tasks at once (pydantic only, like
`schemas.py`; the limits are settings, checked in `validation.py` and the routes)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.api.schemas import ExampleIn, Label, PairInput, PredictResponse, Text

_TS = "2025-01-01T12:00:00Z"


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


def _strict_examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


TaskRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class VersionOut(BaseModel):
    model_config = _examples(
        {
            "version": 2,
            "serving": True,
            "job_id": "job_77c2...",
            "method": "list",
            "tuner": None,
            "created_at": _TS,
            "metrics": {"evaluation_accuracy": 0.91, "steps": 650, "labeled_examples": 36},
        }
    )
    version: int
    serving: bool = Field(description="Whether POST /predict/{task} serves this version.")
    job_id: str
    method: str | None
    tuner: str | None
    created_at: datetime
    metrics: dict[str, Any]


class VersionList(BaseModel):
    model_config = _examples({"serving_version": 2, "data": []})
    serving_version: int | None
    data: list[VersionOut] = Field(description="Newest first.")


class ExamplesAdd(BaseModel):
    model_config = _strict_examples(
        {
            "examples": [{"text": "Not worth the ticket.", "label": "negative"}],
            "unlabeled": ["A film I will watch again.", "Could not sit through it."],
        }
    )
    examples: list[ExampleIn] = Field(default_factory=list, description="More labelled texts.")
    unlabeled: list[Text] = Field(default_factory=list, description="More unlabelled texts.")
    evaluation: list[ExampleIn] = Field(
        default_factory=list, description="More evaluation examples (never trained on)."
    )


class TaskDataCounts(BaseModel):
    model_config = _examples({"examples": 37, "unlabeled": 502, "evaluation": 40, "feedback": 1})
    examples: int
    unlabeled: int
    evaluation: int
    feedback: int = Field(description="Labelled examples that came from feedback.")


class ExamplesAdded(BaseModel):
    model_config = _examples(
        {
            "task": "tsk_9a1b...",
            "added": {"examples": 1, "unlabeled": 2, "evaluation": 0, "feedback": 0},
            "totals": {"examples": 37, "unlabeled": 502, "evaluation": 40, "feedback": 1},
        }
    )
    task: str
    added: TaskDataCounts
    totals: TaskDataCounts


class RetrainRequest(BaseModel):
    model_config = _strict_examples({"promote": "if_better"})
    promote: Literal["always", "if_better"] = Field(
        "if_better",
        description="if_better: serve the new version only if it is not worse than the "
        "served one on the task's evaluation set (always, without one); always: serve it.",
    )


class FeedbackIn(BaseModel):
    model_config = _strict_examples(
        {"prediction_id": "prd_AWdC...", "label": "negative"},
        {"text": "Not worth the ticket.", "label": "negative"},
    )
    prediction_id: str | None = Field(None, description="A prediction's `id`.")
    text: Text | None = Field(None, description="Or the text itself.")
    text_b: Text | None = Field(None, description="With `text`, for pair tasks.")
    label: Label = Field(description="The right label.")


class FeedbackPrediction(BaseModel):
    model_config = _examples({"version": 1, "label": "positive"})
    version: int
    label: str | None


class FeedbackOut(BaseModel):
    model_config = _examples(
        {
            "task": "tsk_9a1b...",
            "example": {"text": "Not worth the ticket.", "label": "negative"},
            "replaced": False,
            "prediction": {"version": 1, "label": "positive"},
            "totals": {"examples": 38, "unlabeled": 502, "evaluation": 40, "feedback": 2},
        }
    )
    task: str
    example: ExampleIn
    replaced: bool = Field(description="It relabelled an example with the same text.")
    prediction: FeedbackPrediction | None = Field(
        description="What the model said, when the feedback named a prediction id."
    )
    totals: TaskDataCounts


class SuggestionOut(BaseModel):
    model_config = _examples(
        {
            "text": "It was fine, I suppose.",
            "text_b": None,
            "label": "positive",
            "uncertainty": 0.96,
            "scores": {"positive": 0.52, "negative": 0.48},
        }
    )
    text: str
    text_b: str | None
    label: str = Field(description="What the served version predicts.")
    uncertainty: float = Field(description="1 - (top score - second score): 1 is a tie.")
    scores: dict[str, float]


class SuggestionList(BaseModel):
    model_config = _examples({"task": "tsk_9a1b...", "adapter_version": 1, "pool": 498, "data": []})
    task: str
    adapter_version: int
    pool: int = Field(description="Unlabelled texts scored (at most LISTSERVE_SUGGESTION_POOL).")
    data: list[SuggestionOut]


class MultiPredictRequest(BaseModel):
    model_config = _strict_examples(
        {"tasks": ["tsk_9a1b...", "tsk_4c2d..."], "inputs": ["What a delight."]}
    )
    tasks: list[TaskRef] = Field(description="Distinct task ids, each answered in order.")
    inputs: list[str | PairInput] = Field(
        description="Each input is predicted under each task: len(inputs) x len(tasks) rows, "
        "at most LISTSERVE_MAX_PREDICT_INPUTS rows per request."
    )


class MultiPredictResponse(BaseModel):
    model_config = _examples({"results": []})
    results: list[PredictResponse] = Field(description="One per task, in the request's order.")
