"""Checks that need settings or the backbone; each failure names the field and the reason.

Pydantic checks shapes and types; everything configurable (counts, lengths) and everything
that depends on the running backbone (label words must be one token for an MLM head) is
checked here, so the API answers 422 instead of a training job failing later.
"""

import reprlib
from dataclasses import dataclass

from list_core.backbone import Backbone
from list_core.hyperparams import HyperparameterError, resolve_hyperparameters
from list_core.prompts import PromptError, TaskSpec, label_word_ids
from service.api.schemas import ExampleIn, PairInput, PredictRequest, TaskCreate, text_problem
from service.registry.tasks import NewTask
from service.settings import Settings


class ValidationFailed(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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
        raise ValidationFailed("unlabeled", "not supported with a {text_b} (pair) template")
    for index, text in enumerate(body.unlabeled):
        _check_text(f"unlabeled[{index}]", text, settings.max_text_chars)
    hyperparameters = _check_hyperparameters(body, settings, backbone)
    head_kind = "classic" if body.method == "classic" else backbone.prompt_head_kind
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
        raise ValidationFailed(
            "labels",
            f"a task needs {settings.min_labels} to {settings.max_labels} labels, "
            f"got {len(labels)}",
        )
    for index, label in enumerate(labels):
        _check_text(f"labels[{index}]", label, settings.max_label_chars)
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValidationFailed(
            "labels",
            f"labels must be unique (compared after Unicode NFC normalisation); "
            f"repeated: {duplicates}",
        )
    if body.template is not None and len(body.template) > settings.max_template_chars:
        raise ValidationFailed(
            "template", f"at most {settings.max_template_chars} characters allowed"
        )
    for label, word in (body.label_words or {}).items():
        _check_text(f"label_words.{label}", word, settings.max_label_word_chars)
    try:
        spec = TaskSpec.create(labels, body.template, body.label_words)
        if body.method != "classic" and backbone.has_mlm_head:
            label_word_ids(backbone.tokenizer, spec)
    except PromptError as error:
        raise ValidationFailed(error.field, error.message) from error
    return spec


def _check_examples(body: TaskCreate, spec: TaskSpec, settings: Settings) -> None:
    _check_count("examples", len(body.examples), settings.max_examples)
    _check_labelled("examples", body.examples, spec, settings)
    missing = [label for label in spec.labels if all(e.label != label for e in body.examples)]
    if missing:
        raise ValidationFailed("examples", f"each label needs an example; none for {missing}")
    _check_count("evaluation", len(body.evaluation), settings.max_evaluation)
    _check_labelled("evaluation", body.evaluation, spec, settings)


def _check_labelled(
    field: str, examples: list[ExampleIn], spec: TaskSpec, settings: Settings
) -> None:
    for index, example in enumerate(examples):
        where = f"{field}[{index}]"
        _check_text(f"{where}.text", example.text, settings.max_text_chars)
        if example.label not in spec.labels:
            raise ValidationFailed(
                f"{where}.label", f"{reprlib.repr(example.label)} is not one of {list(spec.labels)}"
            )
        if example.text_b is not None:
            _check_text(f"{where}.text_b", example.text_b, settings.max_text_chars)
        elif spec.uses_text_b:
            raise ValidationFailed(f"{where}.text_b", "required: the template uses {text_b}")


def _check_hyperparameters(body: TaskCreate, settings: Settings, backbone: Backbone) -> dict:
    overrides = dict(body.hyperparameters or {})
    try:
        resolved = resolve_hyperparameters(
            overrides, len(body.examples), len(body.unlabeled), backbone.device
        )
    except HyperparameterError as error:
        raise ValidationFailed(error.field, error.message) from error
    if resolved.total_steps() > settings.max_training_steps:
        raise ValidationFailed(
            "hyperparameters",
            f"{resolved.total_steps()} training steps requested; at most "
            f"{settings.max_training_steps} allowed",
        )
    return overrides


def validate_predict(
    body: PredictRequest, settings: Settings, uses_text_b: bool
) -> list[PredictRow]:
    count = len(body.inputs)
    if count == 0:
        raise ValidationFailed("inputs", "give at least one input")
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
            raise ValidationFailed(
                f"inputs[{index}]", 'this task is a pair task: send {"text", "text_b"}'
            )
        rows.append(PredictRow(text, text_b))
    return rows


def _check_count(field: str, count: int, limit: int) -> None:
    if count > limit:
        raise ValidationFailed(field, f"at most {limit} items allowed, got {count}")


def _check_text(field: str, text: str, limit: int) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise ValidationFailed(field, problem)
    if not text.strip():
        raise ValidationFailed(field, "must not be empty")
    if len(text) > limit:
        raise ValidationFailed(field, f"at most {limit} characters allowed, got {len(text)}")


def _record(example: ExampleIn) -> dict:
    record = {"text": example.text, "label": example.label}
    if example.text_b is not None:
        record["text_b"] = example.text_b
    return record
