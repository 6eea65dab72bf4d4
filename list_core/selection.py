"""Never worse than the prior: what a task ships, chosen by k-fold cross-validation on its own
labels (`selection: "cv"`), with its scores calibrated on the same folds.

Few-shot training has no dev set and never sees test data, so the labels are all there is to
choose with. The candidates:
- `prior`: the task's head as initialised, over the frozen encoder without its tuner: the
  zero-shot classifier the task starts from (not offered for a randomly started head);
- every checkpoint of the run: `teacher`, then `session 1` ... `session S` for `list`;
- `blend <checkpoint>`: `w x checkpoint + (1 - w) x prior` logits, `w` fit on the folds (a
  blend serves each row twice, once without the tuner; not offered for tuners with virtual
  tokens, whose rows the prior cannot read as they are).

The procedure: (1) the run on every label, as `last` trains it (its checkpoints are the
candidates); (2) stratified folds, and per fold the same run on the labels outside it, every
checkpoint scoring the held-out ones: out-of-fold logits for every labelled example; (3) each
candidate's CV accuracy: the prior's on every label (it trains on none), each checkpoint's out
of fold, each blend's nested (its weight and temperature fit on the other folds' out-of-fold
logits); (4) the best CV accuracy wins, ties going to the simpler candidate (the prior, then
later checkpoints before earlier ones, then blends); (5) its temperature (and blend weight)
fit on all of its out-of-fold logits (`list_core.calibration`), folded into the shipped heads.
The cost is one more run per fold: `docs/selection.md` gives the measured times.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from list_core.backbone import Backbone
from list_core.calibration import (
    Calibration,
    expected_calibration_error,
    fit_beta,
    fit_blend,
    negative_log_likelihood,
)
from list_core.data import Example
from list_core.evaluation import example_logits
from list_core.field_error import FieldError
from list_core.hyperparams import Hyperparameters
from list_core.progress import Progress, ProgressCallback
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from list_core.tuners.linear.config import LinearConfig

PRIOR = "prior"
BLEND = "blend "

# One training run on these examples, reporting to this callback: its checkpoints in training
# order, as (name, model).
TrainRun = Callable[[list[Example], ProgressCallback | None], list[tuple[str, TaskModel]]]


@dataclass(frozen=True)
class Selection:
    model: TaskModel
    metrics: dict


def folds(spec: TaskSpec, examples: Sequence[Example], count: int, seed: int) -> list[int]:
    """The fold of each example: each label's examples shuffled (seeded), laid end to end in
    label order and dealt round-robin, so every fold holds each label's share and the fold
    sizes are `hyperparams.fold_sizes`."""
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    for label in spec.labels:
        members = [i for i, example in enumerate(examples) if example.label == label]
        order += [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
    assigned = [0] * len(examples)
    for position, index in enumerate(order):
        assigned[index] = position % count
    return assigned


def select_by_cv(
    backbone: Backbone,
    spec: TaskSpec,
    examples: list[Example],
    hp: Hyperparameters,
    method: str,
    head_kind: str,
    train_run: TrainRun,
    run_steps: Callable[[int], int],
    progress: ProgressCallback | None,
) -> Selection:
    """Train the run and its folds (`train_run`), score the candidates, ship the best.
    `run_steps(n)` is one run's step count on `n` labels (for the job's progress)."""
    prior = _prior_model(backbone, spec, hp, method, head_kind)
    if not type(prior.head).supports_scaling():
        raise FieldError(
            "hyperparameters.selection",
            f"'cv' needs a head that can scale its logits; {head_kind!r} cannot",
        )
    started = time.perf_counter()
    count = hp.folds_run(len(examples))
    fold_of = folds(spec, examples, count, hp.seed)
    held = [[i for i, fold in enumerate(fold_of) if fold == f] for f in range(count)]
    steps = [run_steps(len(examples))] + [run_steps(len(examples) - len(h)) for h in held]
    reports = _JobProgress(progress, steps, started)
    main = train_run(list(examples), reports.of_run(0))
    main_seconds = time.perf_counter() - started
    targets = torch.tensor([spec.labels.index(e.label) for e in examples])
    out_of_fold: dict[str, torch.Tensor] = {}
    for f, rows in enumerate(held):
        kept = [e for i, e in enumerate(examples) if fold_of[i] != f]
        for name, model in train_run(kept, reports.of_run(f + 1)):
            logits = example_logits(backbone, model, [examples[i] for i in rows])
            fold_logits = out_of_fold.setdefault(name, torch.zeros(len(examples), logits.shape[1]))
            fold_logits[rows] = logits
    checkpoints = dict(main)
    prior_logits = example_logits(backbone, prior, examples) if prior.head.zero_shot else None
    blends = prior_logits is not None and main[-1][1].adapters.virtual_tokens == 0
    scores = _scores(out_of_fold, prior_logits, targets, fold_of, count, blends)
    # Ties go to the first in this order: the prior, the latest checkpoint, ..., then blends.
    order = [PRIOR, *reversed(list(checkpoints)), *(BLEND + name for name in reversed(checkpoints))]
    ranked = [name for name in order if name in scores]
    choice = max(ranked, key=lambda name: (scores[name]["cv_accuracy"], -ranked.index(name)))
    calibration, choice_logits, before = _calibrate(choice, out_of_fold, prior_logits, targets)
    model = _ship(choice, calibration, checkpoints, prior)
    metrics = {
        "method": "cv",
        "folds": count,
        "choice": choice,
        "cv_accuracy": scores[choice]["cv_accuracy"],
        "candidates": scores,
        **calibration.as_dict(),
        "cv_ece": {
            "before": round(expected_calibration_error(before.softmax(-1), targets), 4),
            "after": round(expected_calibration_error(choice_logits.softmax(-1), targets), 4),
        },
        "main_seconds": round(main_seconds, 3),
        "cv_seconds": round(time.perf_counter() - started - main_seconds, 3),
    }
    model.calibration = {"choice": choice, **calibration.as_dict()}
    return Selection(model, metrics)


def _scores(
    out_of_fold: dict[str, torch.Tensor],
    prior: torch.Tensor | None,
    targets: torch.Tensor,
    fold_of: list[int],
    count: int,
    blends: bool,
) -> dict[str, dict]:
    """Each candidate's CV accuracy and (temperature-scaled) NLL."""
    scores = {}
    if prior is not None:
        scores[PRIOR] = _score(prior, targets)
    for name, logits in out_of_fold.items():
        scores[name] = _score(logits, targets)
        if blends:
            scores[BLEND + name] = _nested_blend_score(logits, prior, targets, fold_of, count)
    return scores


def _score(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    accuracy = (logits.argmax(-1) == targets).double().mean().item()
    nll = negative_log_likelihood(fit_beta(logits, targets) * logits.double(), targets)
    return {"cv_accuracy": round(accuracy, 4), "cv_nll": round(nll, 4)}


def _nested_blend_score(
    trained: torch.Tensor,
    prior: torch.Tensor,
    targets: torch.Tensor,
    fold_of: list[int],
    count: int,
) -> dict:
    """The blend's accuracy on each fold with its weight and temperature fit on the others'
    out-of-fold logits, so its score is as held out as the other candidates'."""
    folds_of = torch.tensor(fold_of)
    correct, nll = 0, 0.0
    for f in range(count):
        inside, outside = folds_of == f, folds_of != f
        calibration, _ = fit_blend(trained[outside], prior[outside], targets[outside])
        mixed = calibration.logits(trained[inside], prior[inside])
        correct += int((mixed.argmax(-1) == targets[inside]).sum())
        nll += negative_log_likelihood(mixed, targets[inside]) * int(inside.sum())
    return {"cv_accuracy": round(correct / len(targets), 4), "cv_nll": round(nll / len(targets), 4)}


def _calibrate(
    choice: str,
    out_of_fold: dict[str, torch.Tensor],
    prior: torch.Tensor | None,
    targets: torch.Tensor,
) -> tuple[Calibration, torch.Tensor, torch.Tensor]:
    """The choice's calibration fit on all its out-of-fold logits, those logits calibrated,
    and as they were before (temperature 1)."""
    if choice == PRIOR:
        assert prior is not None
        calibration, raw = Calibration(fit_beta(prior, targets)), prior
    elif choice.startswith(BLEND):
        assert prior is not None
        trained = out_of_fold[choice.removeprefix(BLEND)]
        calibration, _ = fit_blend(trained, prior, targets)
        raw = replace(calibration, beta=1.0).logits(trained, prior)
    else:
        raw = out_of_fold[choice]
        calibration = Calibration(fit_beta(raw, targets))
    return calibration, calibration.beta * raw.double(), raw.double()


def _ship(
    choice: str, calibration: Calibration, checkpoints: dict[str, TaskModel], prior: TaskModel
) -> TaskModel:
    """The chosen model, its temperature and blend weight folded into its heads' weights (a
    blend fit to weight 0 or 1 ships as the prior or the checkpoint alone)."""
    weight = calibration.weight
    if choice == PRIOR or (choice.startswith(BLEND) and weight == 0.0):
        model = prior
        model.head.scale_logits(calibration.beta)
    else:
        model = checkpoints[choice.removeprefix(BLEND)]
        model.adapters.finalise()
        model.head.scale_logits(calibration.beta * weight)
        if weight < 1.0:
            prior.head.scale_logits(calibration.beta * (1.0 - weight))
            model.prior_head = prior.head.requires_grad_(False)
    return model.eval()


def _prior_model(
    backbone: Backbone, spec: TaskSpec, hp: Hyperparameters, method: str, head_kind: str
) -> TaskModel:
    """The task's head as initialised, with no tuner: the zero-shot prior."""
    generator = torch.Generator().manual_seed(hp.seed)
    model = TaskModel(
        backbone, spec, method, LinearConfig(), hp.max_length, generator, head_kind=head_kind
    )
    return model.eval()


class _JobProgress:
    """The job's progress over all its runs: each run reports its own steps and estimate, and
    the job's fraction, step count and time left add the runs before and after it."""

    def __init__(self, progress: ProgressCallback | None, steps: list[int], started: float):
        self.progress = progress
        self.steps = steps
        self.started = started

    def of_run(self, index: int) -> ProgressCallback | None:
        if self.progress is None:
            return None
        before = sum(self.steps[:index])
        after = sum(self.steps[index + 1 :])
        total = max(sum(self.steps), 1)
        label = "" if index == 0 else f"cv {index}/{len(self.steps) - 1} "
        report = self.progress

        def relay(p: Progress) -> None:
            done = before + p.fraction * self.steps[index]
            elapsed = time.perf_counter() - self.started
            eta = None
            if p.eta_seconds is not None and done > 0:
                eta = round(p.eta_seconds + after * elapsed / done, 1)
            trained = None if p.trained_steps is None else before + p.trained_steps
            report(
                replace(
                    p,
                    phase=label + p.phase,
                    fraction=min(done / total, 1.0),
                    elapsed_seconds=round(elapsed, 3),
                    eta_seconds=eta,
                    trained_steps=trained,
                )
            )

        return relay
