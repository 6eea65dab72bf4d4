"""Checks that need settings or the backbone; each failure names the field and the reason.

Pydantic checks shapes and types; the rules every training set follows are list_core's own
(`list_core/validation.py`, which `train_task` runs too); this module adds everything
configurable (counts, lengths) and everything that depends on the running backbone (label words
must be one token for an MLM head), so the API answers 422 instead of a training job failing
later.
"""

from dataclasses import dataclass

from list_core.backbone import Backbone
from list_core.data import Example
from list_core.field_error import FieldError
from list_core.heads.registry import head_kind_for
from list_core.prompts import TaskSpec, label_word_ids
from list_core.training import training_hyperparameters
from list_core.validation import (
    check_text,
    validate_examples,
    validate_labelled,
    validate_unlabeled,
)
from service.api.schemas import ExampleIn, PairInput, PredictRequest, TaskCreate, text_problem
from service.registry.tasks import NewTask
from service.settings import Settings


@dataclass(frozen=True)
class PredictRow:
    text: str
    text_b: str | None


def validate_task(
    body: TaskCreate, tenant_id: str, settings: Settings, backbone: Backbone
) -> NewTask:
    """Everything a task needs to train successfully, checked before anything is stored."""
    _check_text("name", body.name, settings.max_name_chars)
    spec = _check_spec(body, settings, backbone)
    _check_examples(body, spec, settings)
    _check_count("unlabeled", len(body.unlabeled), settings.max_unlabeled)
    if body.unlabeled and spec.uses_text_b:
        raise FieldError("unlabeled", "not supported with a {text_b} (pair) template")
    unlabeled = [Example(text) for text in body.unlabeled]
    validate_unlabeled(spec, unlabeled, settings.max_text_chars)
    hyperparameters = _check_hyperparameters(body, settings, backbone)
    head_kind = head_kind_for(body.method, backbone)
    return NewTask(
        tenant_id=tenant_id,
        name=body.name.strip(),
        labels=list(spec.labels),
        template=spec.template,
        label_words=dict(spec.label_words),
        method=body.method,
        head_kind=head_kind,
        hyperparameters=hyperparameters,
        examples=[_record(example) for example in body.examples],
        unlabeled=list(body.unlabeled),
        evaluation=[_record(example) for example in body.evaluation],
    )


def _check_spec(body: TaskCreate, settings: Settings, backbone: Backbone) -> TaskSpec:
    labels = body.labels
    if not settings.min_labels <= len(labels) <= settings.max_labels:
        raise FieldError(
            "labels",
            f"a task needs {settings.min_labels} to {settings.max_labels} labels, "
            f"got {len(labels)}",
        )
    for index, label in enumerate(labels):
        _check_text(f"labels[{index}]", label, settings.max_label_chars)
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise FieldError(
            "labels",
            f"labels must be unique (compared after Unicode NFC normalisation); "
            f"repeated: {duplicates}",
        )
    if body.template is not None and len(body.template) > settings.max_template_chars:
        raise FieldError("template", f"at most {settings.max_template_chars} characters allowed")
    for label, word in (body.label_words or {}).items():
        _check_text(f"label_words.{label}", word, settings.max_label_word_chars)
    spec = TaskSpec.create(labels, body.template, body.label_words)
    if body.method != "classic" and backbone.has_mlm_head:
        label_word_ids(backbone.tokenizer, spec)
    return spec


def _check_examples(body: TaskCreate, spec: TaskSpec, settings: Settings) -> None:
    _check_count("examples", len(body.examples), settings.max_examples)
    validate_examples(spec, _examples(body.examples), settings.max_text_chars)
    _check_count("evaluation", len(body.evaluation), settings.max_evaluation)
    validate_labelled("evaluation", spec, _examples(body.evaluation), settings.max_text_chars)


def _check_hyperparameters(body: TaskCreate, settings: Settings, backbone: Backbone) -> dict:
    """Resolved exactly as the job will resolve them (`training_hyperparameters`), so the
    step cap counts the steps this method will really run."""
    overrides = dict(body.hyperparameters or {})
    resolved = training_hyperparameters(
        backbone, body.method, overrides, len(body.examples), len(body.unlabeled)
    )
    steps = resolved.total_steps(body.method, len(body.unlabeled))
    if steps > settings.max_training_steps:
        raise FieldError(
            "hyperparameters",
            f"{steps} training steps requested; at most {settings.max_training_steps} allowed",
        )
    return overrides


def validate_predict(
    body: PredictRequest, settings: Settings, uses_text_b: bool
) -> list[PredictRow]:
    count = len(body.inputs)
    if count == 0:
        raise FieldError("inputs", "give at least one input")
    _check_count("inputs", count, settings.max_predict_inputs)
    rows = []
    for index, item in enumerate(body.inputs):
        if isinstance(item, PairInput):
            text, text_b, text_field = item.text, item.text_b, f"inputs[{index}].text"
        else:
            text, text_b, text_field = item, None, f"inputs[{index}]"
        _check_text(text_field, text, settings.max_text_chars)
        if text_b is not None:
            _check_text(f"inputs[{index}].text_b", text_b, settings.max_text_chars)
        elif uses_text_b:
            raise FieldError(
                f"inputs[{index}]", 'this task is a pair task: send {"text", "text_b"}'
            )
        rows.append(PredictRow(text, text_b))
    return rows


def _check_count(field: str, count: int, limit: int) -> None:
    if count > limit:
        raise FieldError(field, f"at most {limit} items allowed, got {count}")


def _check_text(field: str, text: str, limit: int) -> None:
    """list_core's text rule, after what only storage cares about (a NUL, a lone surrogate):
    request fields typed `Text` were refused by pydantic already, predict inputs were not."""
    problem = text_problem(text)
    if problem is not None:
        raise FieldError(field, problem)
    check_text(field, text, limit)


def _examples(examples: list[ExampleIn]) -> list[Example]:
    return [Example(e.text, e.label, e.text_b) for e in examples]


def _record(example: ExampleIn) -> dict:
    record = {"text": example.text, "label": example.label}
    if example.text_b is not None:
        record["text_b"] = example.text_b
    return record
