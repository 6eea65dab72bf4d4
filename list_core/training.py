"""Training a task: `classic`, `prompt`, and the full LiST loop.

LiST (Wang et al. 2022): (1) a teacher is prompt-tuned on the few labels; (2) in each
self-training session a fresh student (new adapters, pretrained head) learns the teacher's soft
pseudo-labels on unlabelled batches with a per-example KL loss — uniform weights during the
distillation warm-up, meta re-weighted after it — then is fine-tuned on the labels, and becomes
the next teacher. Only adapter and head tensors ever train; the backbone is shared and frozen.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from list_core.backbone import Backbone
from list_core.contrastive import fit_contrastive
from list_core.data import Example
from list_core.encoded_pool import EncodedPool
from list_core.eta import Eta, training_plan
from list_core.evaluation import evaluation_report
from list_core.field_error import FieldError
from list_core.heads.registry import head_kind_for
from list_core.hyperparams import CONTRASTIVE, Hyperparameters, resolve_hyperparameters
from list_core.progress import CancelCheck, Progress, ProgressCallback, TrainingCancelled
from list_core.prompts import EncodedRow, TaskSpec
from list_core.reweighting import class_balanced, meta_weights
from list_core.selection import select_by_cv
from list_core.task_model import METHODS, TaskModel
from list_core.training_forwards import TrainingForwards, TrainingSpeedups, kl_per_example
from list_core.tuners.registry import DEFAULT_TUNER, check_pair, tuner_config
from list_core.tuning import TunerConfig
from list_core.validation import validate_examples, validate_unlabeled


@dataclass
class TrainingResult:
    model: TaskModel
    hyperparameters: Hyperparameters
    metrics: dict = field(default_factory=dict)


def training_hyperparameters(
    backbone: Backbone,
    method: str,
    overrides: dict | None,
    n_labeled: int,
    n_unlabeled: int,
    tuner: str = DEFAULT_TUNER,
) -> Hyperparameters:
    """The hyperparameters `train_task` runs with for these inputs on this backbone, checked
    against the tuner's options (`FieldError` naming the field). The API checks its step cap
    on the result of this same call, so `auto` resolves alike for both."""
    hp = resolve_hyperparameters(overrides, n_labeled, n_unlabeled, backbone.device, method, tuner)
    tuner_config(tuner, hp, backbone)
    check_pair(tuner, method, backbone, hp.teacher)
    return hp


def train_task(
    backbone: Backbone,
    spec: TaskSpec,
    examples: Sequence[Example],
    unlabeled: Sequence[str | Example] = (),
    method: str = "list",
    hyperparameters: Hyperparameters | dict | None = None,
    evaluation: Sequence[Example] = (),
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    tuner: str = DEFAULT_TUNER,
    speedups: TrainingSpeedups | None = None,
) -> TrainingResult:
    """Train a task's tuner and head; returns the last model, or with `selection: "cv"` the
    best by cross-validation on the labels, calibrated (`list_core.selection`).

    `unlabeled` holds plain texts, or `Example`s without labels for pair (`{text_b}`) tasks.
    `tuner` is what trains besides the head (`list_core.tuners`; `adapter` is LiST's).
    `speedups` (default: all) picks the speed-ups of `list_core.training_forwards`.
    """
    if method not in METHODS:
        raise FieldError("method", f"must be one of {list(METHODS)}, got {method!r}")
    check_pair(tuner, method, backbone)
    validate_examples(spec, examples)
    pool = [u if isinstance(u, Example) else Example(u) for u in unlabeled]
    validate_unlabeled(spec, pool)
    if not isinstance(hyperparameters, Hyperparameters):
        hyperparameters = training_hyperparameters(
            backbone, method, hyperparameters, len(examples), len(pool), tuner
        )
    config = tuner_config(tuner, hyperparameters, backbone)
    check_pair(tuner, method, backbone, hyperparameters.teacher)
    hp = hyperparameters
    results: list[TrainingResult] = []

    def train_run(subset: list[Example], report: ProgressCallback | None):
        """One run on `subset`; the first (on every label) also scores the evaluation set."""
        held_out = [] if results else list(evaluation)
        run = _Run(
            backbone,
            spec,
            subset,
            pool,
            method,
            hp,
            held_out,
            report,
            should_cancel,
            config,
            speedups,
        )
        results.append(run.execute())
        return run.checkpoints

    if hp.folds_run(len(examples)) == 0:
        train_run(list(examples), progress)
        return results[0]
    chosen = select_by_cv(
        backbone,
        spec,
        list(examples),
        hp,
        method,
        head_kind_for(method, backbone, hp.teacher),
        train_run,
        lambda n: hp.run_steps(method, len(pool), n),
        progress,
    )
    result = results[0]
    result.model = chosen.model
    result.metrics["selection"] = chosen.metrics
    result.metrics["train_seconds"] = round(
        chosen.metrics["main_seconds"] + chosen.metrics["cv_seconds"], 3
    )
    if evaluation:
        result.metrics["evaluation"] = evaluation_report(backbone, chosen.model, list(evaluation))
        result.metrics["evaluation_accuracy"] = result.metrics["evaluation"]["accuracy"]
    return result


class _Run:
    """State of one training job: data, sampling generator, step accounting, reports."""

    def __init__(
        self,
        backbone: Backbone,
        spec: TaskSpec,
        examples: list[Example],
        unlabeled: list[Example],
        method: str,
        hp: Hyperparameters,
        evaluation: list[Example],
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
        tuner: TunerConfig,
        speedups: TrainingSpeedups | None = None,
    ) -> None:
        self.backbone = backbone
        self.tuner = tuner
        self.spec = spec
        self.examples = examples
        self.unlabeled = unlabeled
        self.method = method
        self.hp = hp
        self.evaluation = evaluation
        self.progress = progress
        self.should_cancel = should_cancel
        self.generator = torch.Generator().manual_seed(hp.seed)
        self.sessions = hp.sessions_run(method, len(unlabeled))
        self.total_steps = max(hp.run_steps(method, len(unlabeled), len(examples)), 1)
        self.done_steps = 0
        self.label_index = {label: i for i, label in enumerate(spec.labels)}
        self.targets = torch.tensor([self.label_index[e.label] for e in examples])
        self.history: list[dict] = []
        self.eta = Eta(training_plan(hp, method, len(unlabeled), len(examples)))
        self.evaluation_report: dict | None = None
        # The model after each phase, in order (`list_core.selection` chooses among them).
        self.checkpoints: list[tuple[str, TaskModel]] = []
        self.pool = EncodedPool(unlabeled)
        self.forwards = TrainingForwards(backbone, speedups or TrainingSpeedups())

    def execute(self) -> TrainingResult:
        started = time.perf_counter()
        torch.manual_seed(self.hp.seed)
        model = self._new_model()
        labeled_rows = model.encode(
            [e.text for e in self.examples], [e.text_b for e in self.examples]
        )
        if self.hp.teacher_recipe(self.method) == CONTRASTIVE:
            teacher_loss = fit_contrastive(self, model, labeled_rows)
        else:
            teacher_loss = self._fit_labeled(
                model,
                labeled_rows,
                self.hp.teacher_steps,
                self.hp.teacher_batch,
                self.hp.teacher_lr,
                "teacher",
                0,
            )
        self._record(0, "teacher", model, {"labeled_loss": teacher_loss})
        teacher = model
        for session in range(1, self.sessions + 1):
            student = self._new_model()
            distill = self._self_train(teacher, student, labeled_rows, session)
            labeled_loss = self._fit_labeled(
                student,
                labeled_rows,
                self.hp.labeled_steps,
                self.hp.labeled_batch,
                self.hp.student_lr,
                "labeled",
                session,
            )
            self._record(session, "session", student, {**distill, "labeled_loss": labeled_loss})
            teacher = student
        metrics = {
            "method": self.method,
            "tuner": self.tuner.name,
            "sessions": self.sessions,
            "steps": self.done_steps,
            "labeled_examples": len(self.examples),
            "unlabeled_examples": len(self.unlabeled),
            "trainable_parameters": teacher.trainable_parameters(),
            "head_kind": teacher.head_kind,
            "training_precision": self.forwards.precision,
            "training_speedups": self.forwards.speedups.as_dict(),
            "train_seconds": round(time.perf_counter() - started, 3),
            "history": self.history,
        }
        if self.evaluation_report is not None:
            metrics["evaluation_accuracy"] = self.evaluation_report["accuracy"]
            metrics["evaluation"] = self.evaluation_report
        teacher.adapters.finalise()
        if teacher.adapters.backbone_bytes:
            metrics["copied_backbone_bytes"] = teacher.adapters.backbone_bytes
        teacher.eval()
        return TrainingResult(teacher, self.hp, metrics)

    def _new_model(self) -> TaskModel:
        model = TaskModel(
            self.backbone,
            self.spec,
            self.method,
            self.tuner,
            self.hp.max_length,
            self.generator,
            head_kind=head_kind_for(self.method, self.backbone, self.hp.teacher),
        )
        model.hidden_dropout = self.hp.hidden_dropout
        return model

    def _optimizer(self, model: TaskModel, lr: float, steps: int):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=self.hp.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1.0 - step / max(steps, 1))
        )
        return params, optimizer, schedule

    def _step(self, params, optimizer, schedule, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.hp.grad_clip)
            optimizer.step()
        schedule.step()

    def _batches(self, size: int, count: int):
        """Reshuffled epochs over the labelled set, `count` batches in all."""
        order: list[int] = []
        for _ in range(count):
            if len(order) < size:
                order += torch.randperm(len(self.examples), generator=self.generator).tolist()
            batch, order = order[:size], order[size:]
            yield batch

    def _fit_labeled(self, model, rows, steps, batch_size, lr, phase, session) -> float:
        params, optimizer, schedule = self._optimizer(model, lr, steps)
        model.train()
        running = math.nan
        for step, indices in enumerate(self._batches(min(batch_size, len(rows)), steps), 1):
            self._check_cancel()
            logits = self.forwards.logits(model, [rows[i] for i in indices])
            loss = F.cross_entropy(logits, self.targets[indices].to(logits.device))
            self._step(params, optimizer, schedule, loss)
            running = _smooth(running, loss.item())
            self._advance(session, phase, step, steps, {"labeled_loss": running})
        return running

    def _self_train(self, teacher, student, labeled_rows, session: int) -> dict:
        hp = self.hp
        steps = hp.unlabeled_steps
        warmup = math.ceil(hp.warmup_fraction * steps) if hp.distillation_warmup else 0
        params, optimizer, schedule = self._optimizer(student, hp.student_lr, steps)
        teacher.eval()
        student.train()
        kl_running, agreement_running, kept_running = math.nan, math.nan, math.nan
        predicted_counts = torch.ones(len(self.spec.labels), device=self.backbone.device)
        teacher_labels = self.forwards.teacher_labels(teacher)
        for step in range(1, steps + 1):
            self._check_cancel()
            picks, rows = self._unlabeled_rows(student, hp.unlabeled_batch)
            soft = teacher_labels(picks, rows)
            if hp.meta_reweighting and step > warmup:
                indices = next(self._batches(min(hp.labeled_batch, len(labeled_rows)), 1))
                student_logits, example_kl, alignment = self.forwards.reweighted(
                    student,
                    rows,
                    soft,
                    [labeled_rows[i] for i in indices],
                    self.targets[indices],
                    hp.reweight_epsilon,
                )
                weights = meta_weights(alignment)
                phase = "reweight"
            else:
                student_logits = self.forwards.logits(student, rows)
                example_kl = kl_per_example(soft, student_logits)
                weights = torch.full_like(example_kl, 1.0 / len(rows))
                phase = "distill"
            pseudo_labels = soft.argmax(-1)
            if hp.balance_pseudo_labels:
                predicted_counts += torch.bincount(pseudo_labels, minlength=len(predicted_counts))
                weights = class_balanced(weights, pseudo_labels, predicted_counts)
            self._step(params, optimizer, schedule, (weights.detach() * example_kl).sum())
            agreement = (student_logits.argmax(-1) == pseudo_labels).float().mean().item()
            kl_running = _smooth(kl_running, example_kl.mean().item())
            agreement_running = _smooth(agreement_running, agreement)
            kept_running = _smooth(kept_running, (weights > 0).float().mean().item())
            self._advance(
                session, phase, step, steps, {"kl": kl_running}, agreement=agreement_running
            )
        return {"kl": kl_running, "agreement": agreement_running, "kept_fraction": kept_running}

    def _unlabeled_rows(self, model: TaskModel, size: int) -> tuple[list[int], list[EncodedRow]]:
        """A random batch drawn with replacement (its pool indices and rows): cost grows with
        steps, not pool size."""
        picks = torch.randint(len(self.unlabeled), (size,), generator=self.generator).tolist()
        return picks, self.pool.rows(picks, model.encode)

    def _record(self, session: int, phase: str, model: TaskModel, losses: dict) -> None:
        self.checkpoints.append(("teacher" if session == 0 else f"session {session}", model))
        entry = {"session": session, "phase": phase, **losses}
        if self.evaluation:
            trains = self.forwards.backbones.trains
            self.evaluation_report = evaluation_report(trains, model, self.evaluation)
            entry["evaluation_accuracy"] = self.evaluation_report["accuracy"]
        self.history.append(entry)
        if self.progress is not None and self.evaluation:
            self.progress(
                Progress(
                    session,
                    self.sessions,
                    f"{phase}_done",
                    0,
                    0,
                    self.done_steps / self.total_steps,
                    losses,
                    evaluation_accuracy=entry["evaluation_accuracy"],
                    elapsed_seconds=self.eta.elapsed_seconds(),
                    eta_seconds=self.eta.eta_seconds(),
                )
            )

    def _advance(self, session, phase, step, steps, losses, agreement=None) -> None:
        self.done_steps += 1
        self.eta.step(phase)
        if self.progress is not None:
            self.progress(
                Progress(
                    session,
                    self.sessions,
                    phase,
                    step,
                    steps,
                    min(self.done_steps / self.total_steps, 1.0),
                    dict(losses),
                    agreement,
                    elapsed_seconds=self.eta.elapsed_seconds(),
                    eta_seconds=self.eta.eta_seconds(),
                    trained_steps=self.done_steps,
                )
            )

    def _check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise TrainingCancelled(f"training cancelled after {self.done_steps} steps")


def _smooth(previous: float, value: float, momentum: float = 0.9) -> float:
    return value if math.isnan(previous) else momentum * previous + (1 - momentum) * value


def evaluate_accuracy(backbone: Backbone, model: nn.Module, examples: Sequence[Example]) -> float:
    """Accuracy on held-out examples: for reports only, never for training or selection."""
    return evaluation_report(backbone, model, examples)["accuracy"]
