"""Training hyperparameters: named budgets, an `auto` default, and validated overrides.

`paper` is the LiST reference schedule exactly. `fast` and `standard` are listserve's presets for
a frozen backbone with adapters (higher learning rates than full fine-tuning, fewer steps).
`auto` starts from `fast` on CPU and `standard` on CUDA, then scales the schedule to the data:
enough epochs over a small labelled set, no more unlabelled passes than the pool supports. For
the prompt-based methods (`prompt`, `list`) it also lowers both learning rates to 1e-4: at 1e-3 the
teacher fits 30 labels to a loss of ~1e-5 and its pseudo-labels are no better than zero-shot's
(benchmarks/RESULTS.md, hyperparameter experiments). `classic` keeps 1e-3: its head starts from
random weights and did not learn in the same number of steps at 1e-4.
"""

import math
import reprlib
from dataclasses import asdict, dataclass, fields, replace

import torch

from list_core.field_error import FieldError
from list_core.sites import LINEAR_PLACES

BUDGETS = ("auto", "fast", "standard", "paper")
AUTO_PROMPT_LEARNING_RATE = 1e-4
PROMPT_BASED_METHODS = ("prompt", "list")
SELF_TRAINING_METHOD = "list"
CONTRASTIVE = "contrastive"
TEACHERS = ("prompt", CONTRASTIVE)  # what `list`'s first model trains with


@dataclass(frozen=True)
class Hyperparameters:
    budget: str = "fast"
    seed: int = 13
    sessions: int = 2
    teacher_steps: int = 150
    teacher_batch: int = 8
    teacher_lr: float = 1e-3
    student_lr: float = 1e-3
    unlabeled_steps: int = 150
    unlabeled_batch: int = 16
    labeled_steps: int = 50
    labeled_batch: int = 8
    warmup_fraction: float = 0.6
    meta_reweighting: bool = True
    distillation_warmup: bool = True
    balance_pseudo_labels: bool = False
    reweight_epsilon: float = 1e-3
    adapter_kind: str = "list"
    bottleneck: int = 32
    placement: tuple[str, ...] = ("attention", "ffn")
    max_length: int = 64
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    hidden_dropout: float = 0.0
    # Options of the other tuners (`list_core.tuners`; docs/tuners.md). Each tuner reads its
    # own and ignores the rest.
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("query", "value")
    prefix_length: int = 10
    prefix_hidden: int = 0
    prompt_length: int = 10
    prompt_encoder_hidden: int = 64
    mlp_layers: int = 2
    partial_layers: int = 1
    side_hidden: int = 64
    # The teacher `list` starts from: `prompt` (prompt-based fine-tuning, LiST's) or
    # `contrastive` (SetFit's recipe, `list_core.contrastive`), and that recipe's schedule:
    # 2 x iterations x (labelled examples) sentence pairs per epoch, then the head alone.
    teacher: str = "prompt"
    contrastive_iterations: int = 20
    contrastive_epochs: int = 1
    contrastive_batch: int = 16
    contrastive_lr: float = 3e-3
    head_steps: int = 100
    head_lr: float = 1e-2
    # What a run ships (`list_core.selection`): its last model, or (`cv`) the best by k-fold
    # cross-validation on the labels of the zero-shot prior, each trained checkpoint and its
    # blend with the prior, with a temperature fit on the same folds.
    selection: str = "last"
    cv_folds: int = 5

    def as_dict(self) -> dict:
        data = asdict(self)
        data["placement"] = list(self.placement)
        data["lora_targets"] = list(self.lora_targets)
        return data

    def sessions_run(self, method: str, n_unlabeled: int) -> int:
        """The self-training sessions a `method` run goes through: only `list` self-trains,
        and only with an unlabelled pool to pseudo-label; `classic` and `prompt` stop after
        the teacher."""
        return self.sessions if method == SELF_TRAINING_METHOD and n_unlabeled > 0 else 0

    def teacher_recipe(self, method: str) -> str:
        """How the first model of a `method` run trains: `contrastive` (the method, or `list`
        from a contrastive teacher), else `method`'s own loss (`prompt` for `list`)."""
        if method == CONTRASTIVE:
            return CONTRASTIVE
        if method == SELF_TRAINING_METHOD:
            return self.teacher
        return method

    def contrastive_steps(self, n_labeled: int) -> int:
        """Steps of the contrastive phase: its pairs (`list_core.contrastive.sentence_pairs`)
        over `contrastive_epochs`, `contrastive_batch` pairs a step."""
        pairs = 2 * self.contrastive_iterations * n_labeled
        return math.ceil(self.contrastive_epochs * pairs / self.contrastive_batch)

    def run_steps(self, method: str, n_unlabeled: int, n_labeled: int = 0) -> int:
        """The optimizer steps one training run takes: the teacher's, then each session's."""
        if self.teacher_recipe(method) == CONTRASTIVE:
            teacher = self.contrastive_steps(n_labeled) + self.head_steps
        else:
            teacher = self.teacher_steps
        per_session = self.unlabeled_steps + self.labeled_steps
        return teacher + self.sessions_run(method, n_unlabeled) * per_session

    def folds_run(self, n_labeled: int) -> int:
        """Cross-validation folds a run trains besides its own (none unless `selection` is
        `cv`; never more than there are labelled examples)."""
        return min(self.cv_folds, n_labeled) if self.selection == "cv" else 0

    def total_steps(self, method: str, n_unlabeled: int, n_labeled: int = 0) -> int:
        """The optimizer steps a `method` job takes: its run on every label, then one run per
        cross-validation fold on the labels outside that fold."""
        steps = self.run_steps(method, n_unlabeled, n_labeled)
        for held_out in fold_sizes(n_labeled, self.folds_run(n_labeled)):
            steps += self.run_steps(method, n_unlabeled, n_labeled - held_out)
        return steps


def fold_sizes(n_labeled: int, folds: int) -> list[int]:
    """How many labelled examples each fold holds out (`list_core.selection.folds`)."""
    return [n_labeled // folds + (1 if fold < n_labeled % folds else 0) for fold in range(folds)]


PRESETS: dict[str, Hyperparameters] = {
    "fast": Hyperparameters(),
    "standard": Hyperparameters(
        budget="standard",
        sessions=3,
        teacher_steps=300,
        unlabeled_steps=400,
        labeled_steps=100,
        bottleneck=64,
        max_length=128,
    ),
    "paper": Hyperparameters(
        budget="paper",
        sessions=6,
        teacher_steps=1000,
        teacher_batch=4,
        teacher_lr=5e-6,
        student_lr=1e-4,
        unlabeled_steps=1000,
        unlabeled_batch=16,
        labeled_steps=400,
        labeled_batch=4,
        bottleneck=128,
        max_length=128,
    ),
}

_POSITIVE_INTS = (
    "teacher_steps",
    "teacher_batch",
    "unlabeled_batch",
    "labeled_batch",
    "bottleneck",
    "max_length",
    "lora_rank",
    "prefix_length",
    "prompt_length",
    "prompt_encoder_hidden",
    "mlp_layers",
    "partial_layers",
    "side_hidden",
    "contrastive_iterations",
    "contrastive_epochs",
    "contrastive_batch",
)
_NON_NEGATIVE_INTS = (
    "sessions",
    "unlabeled_steps",
    "labeled_steps",
    "seed",
    "prefix_hidden",
    "head_steps",
)
_POSITIVE_FLOATS = (
    "teacher_lr",
    "student_lr",
    "reweight_epsilon",
    "grad_clip",
    "lora_alpha",
    "contrastive_lr",
    "head_lr",
)
# Options that are one of a few names.
_CHOICES = {"teacher": TEACHERS, "selection": ("last", "cv")}
_LORA_TARGETS = LINEAR_PLACES
# The learning rate `auto` gives a tuner whose tensors are not small changes inside the
# encoder: soft prompts and prefixes are embeddings-scale vectors that moved too little at the
# adapters' 1e-4 in a few hundred steps (Lester et al. train prompts at 0.3; a listserve
# preset, not yet measured against others here).
AUTO_TUNER_LEARNING_RATES = {"prefix": 1e-2, "prompt_tuning": 1e-2, "p_tuning": 1e-3}


def _invalid(key: str, message: str) -> FieldError:
    """The error for one hyperparameter, named as the API's request body names it."""
    return FieldError(f"hyperparameters.{key}", message)


def resolve_hyperparameters(
    overrides: dict | None = None,
    n_labeled: int = 30,
    n_unlabeled: int = 0,
    device: torch.device | str = "cpu",
    method: str = "list",
    tuner: str = "adapter",
) -> Hyperparameters:
    """Pick the budget's preset, fit `auto` to the data, method and tuner, then apply
    overrides."""
    overrides = dict(overrides or {})
    budget = overrides.pop("budget", "auto")
    if budget not in BUDGETS:
        raise _invalid("budget", f"must be one of {BUDGETS}, got {reprlib.repr(budget)}")
    known = {f.name for f in fields(Hyperparameters)} - {"budget"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise _invalid(unknown[0], f"unknown hyperparameter; known: {sorted(known)}")
    if budget == "auto":
        on_gpu = torch.device(device).type == "cuda"
        base = replace(PRESETS["standard" if on_gpu else "fast"], budget="auto")
        base = _scale_to_data(base, n_labeled, n_unlabeled)
        if method in PROMPT_BASED_METHODS:
            rate = AUTO_PROMPT_LEARNING_RATE
            base = replace(base, teacher_lr=rate, student_lr=rate)
        if tuner in AUTO_TUNER_LEARNING_RATES:
            rate = AUTO_TUNER_LEARNING_RATES[tuner]
            base = replace(base, teacher_lr=rate, student_lr=rate)
    else:
        base = PRESETS[budget]
    values = {key: _coerce(key, value, getattr(base, key)) for key, value in overrides.items()}
    return replace(base, **values)


def _scale_to_data(base: Hyperparameters, n_labeled: int, n_unlabeled: int) -> Hyperparameters:
    """At least ~30 epochs over a tiny labelled set; no more than 3 passes over the pool."""
    teacher_epochs = math.ceil(max(n_labeled, 1) / base.teacher_batch)
    teacher_steps = min(max(base.teacher_steps, 30 * teacher_epochs), 4 * base.teacher_steps)
    unlabeled_steps = min(base.unlabeled_steps, math.ceil(3 * n_unlabeled / base.unlabeled_batch))
    sessions = base.sessions if n_unlabeled else 0
    return replace(
        base, teacher_steps=teacher_steps, unlabeled_steps=unlabeled_steps, sessions=sessions
    )


def _coerce(key: str, value, default):
    """Check one override's type and range, naming the field on failure."""
    if key == "placement":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not value:
            raise _invalid(key, "must be a non-empty list of 'attention'/'ffn'")
        bad = [p for p in value if p not in ("attention", "ffn")]
        if bad:
            raise _invalid(key, f"unknown placement {reprlib.repr(bad[0])}")
        return tuple(value)
    if key == "lora_targets":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not value:
            raise _invalid(key, f"must be a non-empty list of {list(_LORA_TARGETS)}")
        bad = [t for t in value if t not in _LORA_TARGETS]
        if bad:
            raise _invalid(key, f"unknown target {reprlib.repr(bad[0])}; use {list(_LORA_TARGETS)}")
        return tuple(dict.fromkeys(value))
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise _invalid(key, f"must be one of {list(_CHOICES[key])}, got {reprlib.repr(value)}")
        return value
    if key == "cv_folds" and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise _invalid(key, "must be an integer >= 2")
    if key == "adapter_kind":
        if value not in ("list", "houlsby"):
            raise _invalid(key, "must be 'list' or 'houlsby'")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _invalid(key, "must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(key, "must be an integer")
        if key in _POSITIVE_INTS and value < 1:
            raise _invalid(key, "must be >= 1")
        if key in _NON_NEGATIVE_INTS and value < 0:
            raise _invalid(key, "must be >= 0")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(key, "must be a finite number")
    if key in _POSITIVE_FLOATS and value <= 0:
        raise _invalid(key, "must be > 0")
    if key == "warmup_fraction" and not 0 <= value <= 1:
        raise _invalid(key, "must be between 0 and 1")
    if key == "hidden_dropout" and not 0 <= value < 1:
        raise _invalid(key, "must be >= 0 and < 1")
    if key == "weight_decay" and value < 0:
        raise _invalid(key, "must be >= 0")
    return float(value)
