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
from list_core.hyperparams import Hyperparameters
from list_core.prompts import TaskSpec, label_word_ids
from list_core.training import training_hyperparameters
from list_core.tuners.registry import DEFAULT_TUNER, check_pair
from list_core.validation import (
    check_count,
    check_coverage,
    check_text,
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
    spec = _check_spec(body, settings)
    check_task_data(spec, body.examples, body.unlabeled, body.evaluation, settings)
    hyperparameters = dict(body.hyperparameters or {})
    check_pair(body.tuner, body.method, backbone)
    resolved = check_training_steps(
        body.method,
        hyperparameters,
        len(body.examples),
        len(body.unlabeled),
        settings,
        backbone,
        body.tuner,
    )
    # `list` from a contrastive teacher trains the pooled similarity head, not the MLM one.
    head_kind = head_kind_for(body.method, backbone, resolved.teacher)
    if head_kind == "mlm":
        _check_label_words(backbone, spec, set(body.label_words or {}))
    return NewTask(
        tenant_id=tenant_id,
        name=body.name.strip(),
        labels=list(spec.labels),
        template=spec.template,
        label_words=dict(spec.label_words),
        method=body.method,
        head_kind=head_kind,
        tuner=body.tuner,
        hyperparameters=hyperparameters,
        examples=[record(example) for example in body.examples],
        unlabeled=list(body.unlabeled),
        evaluation=[record(example) for example in body.evaluation],
    )


def _check_spec(body: TaskCreate, settings: Settings) -> TaskSpec:
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
    return TaskSpec.create(labels, body.template, body.label_words)


def _check_label_words(backbone: Backbone, spec: TaskSpec, given: set[str]) -> None:
    """One token per label word for the MLM head; a label left out of `label_words` uses its
    own name, and a refusal of that name says so (else it reads like a word never given)."""
    try:
        label_word_ids(backbone.tokenizer, spec)
    except FieldError as error:
        label = error.field.removeprefix("label_words.")
        if error.field == label or label in given:
            raise
        raise FieldError(
            error.field,
            f"label {label!r} has no entry in label_words, so its own name is its word: "
            f"{error.message}; add a one-token word for it to label_words",
        ) from error


@dataclass(frozen=True)
class StoredData:
    """What a task already holds, when more is added (`POST /tasks/{id}/examples`)."""

    examples: int
    unlabeled: int
    evaluation: int
    labels: frozenset[str]


NO_DATA = StoredData(0, 0, 0, frozenset())


def check_task_data(
    spec: TaskSpec,
    examples: list[ExampleIn],
    unlabeled: list[str],
    evaluation: list[ExampleIn],
    settings: Settings,
    stored: StoredData = NO_DATA,
) -> None:
    """A task's texts, on creation and when more are added: the limits count what the task
    holds too, each label needs an example among all of them, and errors index the texts
    given here."""
    max_chars = settings.max_text_chars
    _check_total("examples", stored.examples, len(examples), settings.max_examples)
    validate_labelled("examples", spec, _examples(examples), max_chars)
    check_coverage(spec, set(stored.labels) | {example.label for example in examples})
    _check_total("evaluation", stored.evaluation, len(evaluation), settings.max_evaluation)
    validate_labelled("evaluation", spec, _examples(evaluation), max_chars)
    _check_total("unlabeled", stored.unlabeled, len(unlabeled), settings.max_unlabeled)
    if unlabeled and spec.uses_text_b:
        raise FieldError("unlabeled", "not supported with a {text_b} (pair) template")
    validate_unlabeled(spec, [Example(text) for text in unlabeled], max_chars)


def _check_total(field: str, stored: int, added: int, limit: int) -> None:
    if not stored:
        check_count(field, added, limit)
    elif stored + added > limit:
        raise FieldError(
            field,
            f"the task has {stored}; {added} more would make {stored + added}, "
            f"at most {limit} allowed",
        )


def check_training_steps(
    method: str,
    overrides: dict,
    n_examples: int,
    n_unlabeled: int,
    settings: Settings,
    backbone: Backbone,
    tuner: str = DEFAULT_TUNER,
) -> Hyperparameters:
    """Hyperparameters resolved exactly as the job will resolve them
    (`training_hyperparameters`, which also checks the tuner's options and the tuner/method
    pair with `list`'s teacher), so the step cap counts the steps this method will really run
    on this much data, cross-validation folds included (`auto` grows with it, so a retrain
    checks again). Returns them."""
    resolved = training_hyperparameters(backbone, method, overrides, n_examples, n_unlabeled, tuner)
    steps = resolved.total_steps(method, n_unlabeled, n_examples)
    if steps > settings.max_training_steps:
        raise FieldError(
            "hyperparameters",
            f"{steps} training steps requested; at most {settings.max_training_steps} allowed",
        )
    return resolved


def task_spec(labels: list[str], template: str, label_words: dict[str, str]) -> TaskSpec:
    """A stored task's spec, to validate more data against."""
    return TaskSpec.create(list(labels), template, dict(label_words))


def _examples(examples: list[ExampleIn]) -> list[Example]:
    return [Example(e.text, e.label, e.text_b) for e in examples]


def record(example: ExampleIn) -> dict:
    """An example as the registry stores it."""
    stored = {"text": example.text, "label": example.label}
    if example.text_b is not None:
        stored["text_b"] = example.text_b
    return stored


def check_feedback(
    spec: TaskSpec,
    text: str,
    text_b: str | None,
    label: str,
    settings: Settings,
    stored: StoredData,
    replaces: bool,
) -> None:
    """A corrected label, named by the feedback body's own fields."""
    check_text("text", text, settings.max_text_chars)
    if text_b is not None:
        check_text("text_b", text_b, settings.max_text_chars)
    elif spec.uses_text_b:
        raise FieldError("text_b", "required: the template uses {text_b}")
    if label not in spec.labels:
        raise FieldError("label", f"{label!r} is not one of {list(spec.labels)}")
    if not replaces and stored.examples >= settings.max_examples:
        raise FieldError(
            "label",
            f"the task already has {stored.examples} labelled examples, the most allowed "
            "(LISTSERVE_MAX_EXAMPLES)",
        )
