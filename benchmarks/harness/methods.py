"""The benchmark's rows: what each method trains, on which data, and how it is measured.

- `majority`: the most frequent label among the K labelled examples (ties: label order).
- `zero-shot`: the prompt model as initialised, no training step (adapters start ~identity,
  the head is the pretrained prompt head).
- `classic`, `prompt`, `list`: list_core's three methods on the K labels (+ unlabelled for list).
- `list-no-reweight`, `list-no-warmup`: LiST without meta re-weighting / without the
  distillation warm-up (ablations).
- `contrastive`: SetFit's recipe on the task's tuner (list_core/contrastive.py);
  `list-contrastive`: LiST from a contrastive teacher. These and the rows above ship their last
  model (`selection: "last"`).
- `prompt-cv`, `contrastive-cv`, `list-cv`, `list-contrastive-cv`: the same, shipping what
  k-fold cross-validation on the K labels prefers among the zero-shot prior, the checkpoints
  and their blends with the prior, calibrated on the folds (list_core/selection.py).
- `full-classic`, `full-prompt`: classic/prompt trained on the whole labelled train pool with a
  longer schedule; the table's upper bound is the better of the two per task.
- `setfit`: SetFit itself (the `peers` extra) on the same K labels with library defaults
  (`harness/setfit_accuracy.py`).
"""

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from benchmarks.harness.fewshot import Split, Task, with_text
from benchmarks.harness.scoring import predict_logits, score
from benchmarks.harness.setfit_accuracy import run_setfit
from list_core.adapters import AdapterConfig
from list_core.artifact import adapter_bytes, save_task_model
from list_core.backbone import Backbone
from list_core.calibration import expected_calibration_error
from list_core.hyperparams import resolve_hyperparameters
from list_core.progress import Progress
from list_core.task_model import TaskModel
from list_core.training import evaluate_accuracy, train_task
from list_core.training_forwards import TrainingSpeedups

# method name -> (list_core method, hyperparameters the row is defined by). The rows that
# ship their last model say so, so their meaning stays whatever `auto` selects by default.
LAST = {"selection": "last"}
CV = {"selection": "cv"}
CONTRASTIVE_TEACHER = {"teacher": "contrastive"}
TRAINED: dict[str, tuple[str, dict]] = {
    "classic": ("classic", LAST),
    "prompt": ("prompt", LAST),
    "list": ("list", LAST),
    "list-no-reweight": ("list", {**LAST, "meta_reweighting": False}),
    "list-no-warmup": ("list", {**LAST, "distillation_warmup": False}),
    "contrastive": ("contrastive", LAST),
    "list-contrastive": ("list", {**LAST, **CONTRASTIVE_TEACHER}),
    "prompt-cv": ("prompt", CV),
    "contrastive-cv": ("contrastive", CV),
    "list-cv": ("list", CV),
    "list-contrastive-cv": ("list", {**CV, **CONTRASTIVE_TEACHER}),
}
FULL_DATA: dict[str, str] = {"full-classic": "classic", "full-prompt": "prompt"}
PEERS = ("setfit",)
METHODS = ("majority", "zero-shot", *TRAINED, *FULL_DATA, *PEERS)


@dataclass(frozen=True)
class FullDataSchedule:
    """Steps and batch for the full-data upper bound: ~1 epoch over a pool on this CPU."""

    steps: int = 500
    batch: int = 16


@dataclass(frozen=True)
class JobSpec:
    """Everything that defines one job besides the task and its split."""

    method: str
    budget: str
    seed: int
    overrides: dict
    full_data: FullDataSchedule = FullDataSchedule()
    pseudo_eval: int = 256
    tuner: str = "adapter"  # what trains besides the head (list_core/tuners)
    # The training speed-ups (list_core/training_forwards.py); default: all.
    speedups: TrainingSpeedups = field(default_factory=TrainingSpeedups)


def run_job(
    backbone: Backbone,
    task: Task,
    split: Split,
    job: JobSpec,
    progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Train (or build) the method's model, score it on the whole test set, measure its cost."""
    if job.method not in METHODS:
        raise ValueError(f"unknown method {job.method!r}; known: {list(METHODS)}")
    if job.method == "majority":
        return _majority(task, split)
    if job.method == "setfit":
        return run_setfit(backbone.source, task, split, job.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    if job.method == "zero-shot":
        model, hyperparameters, history, metrics = _zero_shot(backbone, task, split, job)
    else:
        model, hyperparameters, history, metrics = _train(backbone, task, split, job, progress)
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    scored = time.perf_counter()
    logits = predict_logits(backbone, model, task.test)
    predicted = [task.spec.labels[i] for i in logits.argmax(-1).tolist()]
    eval_s = time.perf_counter() - scored
    with tempfile.TemporaryDirectory(prefix="listserve-bench-") as directory:
        save_task_model(model, backbone, directory, hyperparameters=hyperparameters)
        stored = adapter_bytes(directory)
    self_trains = job.method in TRAINED and TRAINED[job.method][0] == "list"
    return {
        **score(task.test, predicted, task.spec.labels),
        **_calibration(task, logits, metrics.get("selection")),
        "k": len(with_text(task.train)) if job.method in FULL_DATA else len(split.labeled),
        "n_unlabeled": len(split.unlabeled) if self_trains else 0,
        "trainable_params": metrics.get("trainable_parameters", model.trainable_parameters()),
        "adapter_bytes": stored,
        "copied_backbone_bytes": model.adapters.backbone_bytes,
        "head_kind": model.head_kind,
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "eval_s": round(eval_s, 2),
        "training_precision": metrics.get("training_precision"),
        "training_speedups": metrics.get("training_speedups"),
        "hyperparameters": hyperparameters,
        "history": history,
    }


def _calibration(task: Task, logits: torch.Tensor, selection: dict | None) -> dict:
    """ECE of the served scores on the test set; with cross-validated selection also what it
    was before the fitted temperature (the served logits times it), the choice and its CV
    accuracy."""
    targets = torch.tensor([task.spec.labels.index(e.label) for e in task.test])
    fields = {"ece": expected_calibration_error(logits.softmax(-1), targets)}
    if selection is not None:
        raw = logits * selection["temperature"]
        fields["ece_uncalibrated"] = expected_calibration_error(raw.softmax(-1), targets)
        fields["selection"] = {
            key: selection[key]
            for key in (
                "choice",
                "cv_accuracy",
                "temperature",
                "prior_weight",
                "candidates",
                "main_seconds",
                "cv_seconds",
            )
        }
    return fields


def _majority(task: Task, split: Split) -> dict:
    counts = Counter(example.label for example in split.labeled)
    label = max(task.spec.labels, key=lambda name: (counts[name], -task.spec.labels.index(name)))
    predicted = [label] * len(task.test)
    return {
        **score(task.test, predicted, task.spec.labels),
        "k": len(split.labeled),
        "n_unlabeled": 0,
        "trainable_params": 0,
        "adapter_bytes": 0,
        "head_kind": None,
        "wall_s": 0.0,
        "cpu_s": 0.0,
        "eval_s": 0.0,
        "hyperparameters": None,
        "history": [],
        "predicted_label": label,
    }


def _zero_shot(backbone: Backbone, task: Task, split: Split, job: JobSpec):
    """The untrained prompt model: the same construction train_task starts from."""
    hp = resolve_hyperparameters(
        {"budget": job.budget, "seed": job.seed, **job.overrides},
        len(split.labeled),
        len(split.unlabeled),
        backbone.device,
    )
    config = AdapterConfig(kind=hp.adapter_kind, bottleneck=hp.bottleneck, placement=hp.placement)
    generator = torch.Generator().manual_seed(job.seed)
    model = TaskModel(backbone, task.spec, "prompt", config, hp.max_length, generator)
    model.eval()
    sample = list(split.unlabeled[: job.pseudo_eval])
    history = []
    if sample:
        accuracy = evaluate_accuracy(backbone, model, sample)
        history.append({"session": 0, "phase": "zero-shot", "evaluation_accuracy": accuracy})
    return model, hp.as_dict(), history, {}


def _train(backbone: Backbone, task: Task, split: Split, job: JobSpec, progress):
    if job.method in FULL_DATA:
        method = FULL_DATA[job.method]
        defining = {"teacher_steps": job.full_data.steps, "teacher_batch": job.full_data.batch}
        examples = with_text(task.train)
        unlabeled, evaluation = [], []
    else:
        method, defining = TRAINED[job.method]
        examples = list(split.labeled)
        unlabeled = split.unlabeled_texts() if method == "list" else []
        evaluation = list(split.unlabeled[: job.pseudo_eval])
    hyperparameters = {"budget": job.budget, "seed": job.seed, **job.overrides, **defining}
    result = train_task(
        backbone,
        task.spec,
        examples,
        unlabeled,
        method=method,
        hyperparameters=hyperparameters,
        evaluation=evaluation,
        progress=progress,
        tuner=job.tuner,
        speedups=job.speedups,
    )
    history = result.metrics.get("history", [])
    # Counted by train_task before a reparameterised prompt or prefix folds into its output.
    return result.model, result.hyperparameters.as_dict(), history, result.metrics
