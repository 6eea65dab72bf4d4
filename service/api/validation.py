"""Checks that need settings or the backbone; each failure names the field and the reason.

Pydantic checks shapes and types; the rules every training set follows are list_core's own
(`list_core/validation.py`, which `train_task` runs too); this module adds everything
configurable (counts, lengths) and everything that depends on the running backbone (label words
must be one token for an MLM head), so the API answers 422 instead of a training job failing
later.
"""

from list_core.backbone import Backbone
from list_core.data import Example
from list_core.field_error import FieldError
from list_core.heads.registry import head_kind_for
from list_core.prompts import TaskSpec, label_word_ids
from list_core.training import training_hyperparameters
from list_core.validation import (
    check_count,
    check_text,
    validate_examples,
    validate_labelled,
    validate_unlabeled,
)
from service.api.schemas import ExampleIn, TaskCreate
from service.registry.tasks import NewTask
from service.settings import Settings


def validate_task(
    body: TaskCreate, tenant_id: str, settings: Settings, backbone: Backbone
) -> NewTask:
    """Everything a task needs to train successfully, checked before anything is stored."""
    check_text("name", body.name, settings.max_name_chars)
    spec = _check_spec(body, settings, backbone)
    _check_examples(body, spec, settings)
    check_count("unlabeled", len(body.unlabeled), settings.max_unlabeled)
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
        check_text(f"labels[{index}]", label, settings.max_label_chars)
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
        check_text(f"label_words.{label}", word, settings.max_label_word_chars)
    spec = TaskSpec.create(labels, body.template, body.label_words)
    if body.method != "classic" and backbone.has_mlm_head:
        label_word_ids(backbone.tokenizer, spec)
    return spec


def _check_examples(body: TaskCreate, spec: TaskSpec, settings: Settings) -> None:
    check_count("examples", len(body.examples), settings.max_examples)
    validate_examples(spec, _examples(body.examples), settings.max_text_chars)
    check_count("evaluation", len(body.evaluation), settings.max_evaluation)
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


def _examples(examples: list[ExampleIn]) -> list[Example]:
    return [Example(e.text, e.label, e.text_b) for e in examples]


def _record(example: ExampleIn) -> dict:
    record = {"text": example.text, "label": example.label}
    if example.text_b is not None:
        record["text_b"] = example.text_b
    return record
