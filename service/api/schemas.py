"""Request and response bodies of the HTTP API (pydantic only; the limits live in settings and
are checked in `validation.py`, so an operator can change them without touching schemas)."""

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from list_core.task_model import METHODS
from list_core.tuners.registry import TUNERS
from list_core.validation import text_problem

_TS = "2025-01-01T12:00:00Z"


def _plain_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_text", problem)
    return value


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


Text = Annotated[str, AfterValidator(_plain_text)]
# Labels are compared in Unicode NFC, so "café" typed precomposed or decomposed is one label.
Label = Annotated[str, AfterValidator(_plain_text), AfterValidator(_nfc)]


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


def _strict_examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class ErrorDetail(BaseModel):
    model_config = _examples(
        {
            "type": "validation_error",
            "message": "examples[3].label: 'meh' is not one of ['positive', 'negative']",
            "details": [{"field": "examples[3].label", "message": "'meh' is not one of [...]"}],
        }
    )
    type: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    model_config = _examples(
        {"error": {"type": "not_found", "message": "task not found", "details": None}}
    )
    error: ErrorDetail


class TenantCreate(BaseModel):
    model_config = _strict_examples({"name": "acme"})
    name: Text = Field(description="A label for humans; not an identifier.")


class TenantCreated(BaseModel):
    model_config = _examples(
        {"id": "tnt_5f0c...", "name": "acme", "api_key": "lsk_Q2xh...shown-once"}
    )
    id: str
    name: str
    api_key: str = Field(description="Shown once; only its sha256 is stored.")


class ExampleIn(BaseModel):
    model_config = _strict_examples({"text": "A wonderful, moving film.", "label": "positive"})
    text: Text
    label: Label
    text_b: Text | None = Field(None, description="Second text, for templates with {text_b}.")


class TaskCreate(BaseModel):
    model_config = _strict_examples(
        {
            "name": "review sentiment",
            "labels": ["positive", "negative"],
            "examples": [
                {"text": "A wonderful, moving film.", "label": "positive"},
                {"text": "Dull and far too long.", "label": "negative"},
            ],
            "unlabeled": ["The cast was superb.", "I want my money back."],
            "template": "{text} It was {mask} .",
            "label_words": {"positive": "great", "negative": "terrible"},
            "method": "list",
            "tuner": "adapter",
            "hyperparameters": {"budget": "fast"},
        }
    )
    name: Text
    labels: list[Label] = Field(
        description="2 to LISTSERVE_MAX_LABELS labels, unique after Unicode NFC normalisation."
    )
    examples: list[ExampleIn] = Field(description="Labelled examples, at least one per label.")
    unlabeled: list[Text] = Field(default_factory=list, description="Unlabelled texts for LiST.")
    template: Text | None = Field(None, description="Prompt with {text} and exactly one {mask}.")
    label_words: dict[Label, Text] | None = Field(
        None,
        description="One word per label; a label left out uses its own name as its word. With "
        "an MLM backbone each word must be one token (422 naming the label otherwise).",
    )
    method: Literal[*METHODS] = Field(
        "list", description="`list` (LiST), `prompt`, `classic` or `contrastive` (SetFit's recipe)."
    )
    tuner: Literal[*TUNERS] = Field(
        "adapter",
        description="What trains besides the head: the LiST adapter (default) or another of "
        "the survey's tuners (docs/tuners.md); its options go in `hyperparameters`.",
    )
    hyperparameters: dict[Text, Any] | None = Field(
        None,
        description='A budget ("fast", "standard", "paper") and/or single overrides, e.g. '
        '{"selection": "cv"} (cross-validated choice and calibration, docs/selection.md).',
    )
    evaluation: list[ExampleIn] = Field(
        default_factory=list, description="Scored for reporting only; never used to train."
    )

    @field_validator("label_words", mode="before")
    @classmethod
    def _one_word_per_label(cls, value: Any) -> Any:
        """Two keys that are one label after NFC would silently collapse into one entry."""
        if isinstance(value, dict):
            seen: dict[str, str] = {}
            for key in value:
                if isinstance(key, str) and text_problem(key) is None:
                    first = seen.setdefault(_nfc(key), key)
                    if first != key:
                        raise PydanticCustomError(
                            "duplicate_label",
                            "keys '{first}' and '{key}' are the same label after Unicode NFC "
                            "normalisation",
                            {"first": first, "key": key},
                        )
        return value


class PairInput(BaseModel):
    model_config = _strict_examples({"text": "A man is playing.", "text_b": "Someone plays."})
    text: str
    text_b: str | None = None


class PredictRequest(BaseModel):
    model_config = _strict_examples(
        {"inputs": ["What a delight.", "Two hours I will never get back."]},
        {"inputs": [{"text": "A man is playing.", "text_b": "Someone plays."}]},
    )
    inputs: list[str | PairInput]


class Prediction(BaseModel):
    model_config = _examples(
        {
            "id": "prd_AWdC...",
            "label": "positive",
            "score": 0.93,
            "scores": {"positive": 0.93, "negative": 0.07},
        }
    )
    id: str = Field(
        description="Send it to POST /tasks/{id}/feedback with the right label. It carries "
        "its text (signed, not encrypted: treat it like the text) and expires after "
        "LISTSERVE_PREDICTION_ID_TTL_SECONDS."
    )
    label: str
    score: float
    scores: dict[str, float]


class PredictResponse(BaseModel):
    model_config = _examples(
        {
            "task": "tsk_9a1b...",
            "adapter_version": 1,
            "predictions": [
                {
                    "id": "prd_AWdC...",
                    "label": "positive",
                    "score": 0.93,
                    "scores": {"positive": 0.93, "negative": 0.07},
                }
            ],
        }
    )
    task: str
    adapter_version: int
    predictions: list[Prediction]


class JobProgress(BaseModel):
    model_config = _examples(
        {
            "session": 1,
            "sessions": 2,
            "phase": "distill",
            "step": 40,
            "steps": 150,
            "fraction": 0.4,
            "elapsed_seconds": 52.3,
            "eta_seconds": 97.0,
        }
    )
    session: int
    sessions: int
    phase: str
    step: int
    steps: int
    fraction: float = Field(description="Steps done over all steps (phases differ in cost).")
    elapsed_seconds: float | None = Field(
        None, description="Seconds since training started (to its end once finished)."
    )
    eta_seconds: float | None = Field(
        None,
        description="Estimated seconds left, from the measured cost of each training phase; "
        "null until measured, 0 once succeeded.",
    )


JobKind = Literal["create", "retrain"]
JobStatus = Literal["queued", "running", "cancel_requested", "succeeded", "failed", "cancelled"]


class JobError(BaseModel):
    model_config = _examples(
        {
            "type": "user_error",
            "code": "invalid_training_data",
            "message": "invalid task: examples[3].label: 'meh' is not one of [...]",
        }
    )
    type: Literal["user_error", "service_error"] = Field(
        description="user_error: the task's data or settings cannot train (fix them); "
        "service_error: ours (retry, or tell the operator)."
    )
    code: str = Field(
        description="invalid_training_data, training_error, store_error, "
        "registration_conflict or attempts_exhausted."
    )
    message: str


class JobSummary(BaseModel):
    model_config = _examples(
        {
            "id": "job_77c2...",
            "kind": "create",
            "status": "running",
            "attempts": 1,
            "progress": {
                "session": 1,
                "sessions": 2,
                "phase": "distill",
                "step": 40,
                "steps": 150,
                "fraction": 0.4,
            },
            "trained_steps": 240,
            "error": None,
            "created_at": _TS,
            "started_at": _TS,
            "finished_at": None,
        }
    )
    id: str
    kind: JobKind
    status: JobStatus
    attempts: int
    progress: JobProgress | None
    trained_steps: int | None = Field(description="Optimiser steps run so far.")
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobResult(BaseModel):
    model_config = _examples({"version": 2, "promoted": True})
    version: int
    promoted: bool = Field(description="Whether the task serves this version now.")


class Job(JobSummary):
    model_config = _examples(
        {
            "id": "job_77c2...",
            "task_id": "tsk_9a1b...",
            "tenant_id": "tnt_5f0c...",
            "kind": "retrain",
            "promote": "if_better",
            "status": "succeeded",
            "attempts": 1,
            "progress": {
                "session": 2,
                "sessions": 2,
                "phase": "labeled",
                "step": 50,
                "steps": 50,
                "fraction": 1.0,
            },
            "trained_steps": 650,
            "result": {"version": 2, "promoted": True},
            "sessions": [
                {"session": 0, "phase": "teacher", "labeled_loss": 0.31},
                {"session": 1, "phase": "session", "kl": 0.02, "labeled_loss": 0.12},
            ],
            "metrics": {"steps": 650, "train_seconds": 41.2, "trainable_parameters": 1234567},
            "error": None,
            "created_at": _TS,
            "started_at": _TS,
            "finished_at": _TS,
        }
    )
    task_id: str
    tenant_id: str
    promote: Literal["always", "if_better"] | None = Field(description="A retrain's policy.")
    result: JobResult | None = Field(description="The version a succeeded job registered.")
    sessions: list[dict[str, Any]] = Field(
        description="Metrics per self-training session (session 0 is the teacher)."
    )
    metrics: dict[str, Any] | None


class AdapterInfo(BaseModel):
    model_config = _examples(
        {"version": 1, "created_at": _TS, "metrics": {"steps": 650, "head_kind": "mlm"}}
    )
    version: int
    created_at: datetime
    metrics: dict[str, Any]


class TaskOut(BaseModel):
    model_config = _examples(
        {
            "id": "tsk_9a1b...",
            "name": "review sentiment",
            "status": "ready",
            "labels": ["positive", "negative"],
            "method": "list",
            "tuner": "adapter",
            "head_kind": "mlm",
            "template": "{text} It was {mask} .",
            "label_words": {"positive": "great", "negative": "terrible"},
            "created_at": _TS,
            "adapter": {"version": 1, "created_at": _TS, "metrics": {"steps": 650}},
            "job": None,
        }
    )
    id: str
    name: str
    status: Literal["training", "ready", "failed", "cancelled"]
    labels: list[str]
    method: str
    tuner: str
    head_kind: str
    template: str
    label_words: dict[str, str] = Field(
        description="The word each label is scored by: the one given in label_words, or the "
        "label's own name where none was given."
    )
    created_at: datetime
    adapter: AdapterInfo | None
    job: JobSummary | None


class TaskList(BaseModel):
    model_config = _examples({"data": [], "has_more": False})
    data: list[TaskOut]
    has_more: bool


class JobList(BaseModel):
    model_config = _examples({"data": [], "has_more": False})
    data: list[Job]
    has_more: bool


class JobEvent(BaseModel):
    model_config = _examples(
        {
            "id": 42,
            "kind": "progress",
            "data": {"session": 1, "phase": "distill", "fraction": 0.4, "losses": {"kl": 0.02}},
            "created_at": _TS,
        }
    )
    id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


class JobEventList(BaseModel):
    model_config = _examples({"data": [], "has_more": False})
    data: list[JobEvent]
    has_more: bool


class Health(BaseModel):
    model_config = _examples({"status": "ok"})
    status: str


class Ready(BaseModel):
    model_config = _examples({"ready": True, "detail": "backbone loaded and warm"})
    ready: bool
    detail: str


class Info(BaseModel):
    model_config = _examples(
        {
            "version": "0.1.0",
            "ready": True,
            "allocator": "jemalloc",
            "backbone": {"name": "roberta-base", "head_kind": "mlm", "fingerprint": "..."},
            "backbone_choice": {"setting": "auto", "source": "FacebookAI/roberta-base"},
            "head_kind": "mlm",
            "runner": {"kind": "in-process", "threads": 1},
            "adapter_cache": {"entries": 3, "hits": 120, "misses": 3},
            "batcher": {"mode": "mixed", "forwards": 40},
            "limits": {"max_predict_inputs": 64, "max_text_chars": 2000},
        }
    )
    version: str
    ready: bool
    allocator: str
    backbone: dict[str, Any] | None
    backbone_choice: dict[str, Any] | None
    head_kind: str | None
    runner: dict[str, Any] | None
    adapter_cache: dict[str, Any] | None
    batcher: dict[str, Any] | None
    limits: dict[str, int] = Field(
        description="What one predict request may hold: `max_predict_inputs` texts of at most "
        "`max_text_chars` characters each (clients chunk by these)."
    )
