"""How long a training job has left, from the measured cost of each phase's steps.

Steps of different phases cost different time: a meta re-weighting step runs a labelled
gradient and an extra forward on top of a distillation step, and a teacher step sees a smaller
batch than either. Counting steps alone (what a plain progress bar does) therefore misjudges
the job, so each phase's step cost is measured as it runs (the median of its recent steps, so a
first step that pays for allocation does not skew it) and the phases not reached yet are
priced from their relative work (forwards and backwards over their batch rows) at the
seconds-per-unit measured so far.
"""

import math
import statistics
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from list_core.hyperparams import Hyperparameters

# Work of one row: a forward is 1, a backward about 2 more.
FORWARD, FORWARD_BACKWARD = 1.0, 3.0
RECENT_STEPS = 64


@dataclass(frozen=True)
class Stage:
    """A run of `steps` consecutive steps of one phase, each about `units` of work."""

    phase: str
    steps: int
    units: float


def training_plan(
    hp: Hyperparameters, method: str, n_unlabeled: int, n_labeled: int = 0
) -> list[Stage]:
    """The stages one training run takes, in order, with their step counts."""
    labeled = FORWARD_BACKWARD * hp.labeled_batch
    distill = (FORWARD + FORWARD_BACKWARD) * hp.unlabeled_batch  # teacher, then student
    # plus the labelled gradient and the finite difference's extra forward
    reweight = distill + FORWARD_BACKWARD * hp.labeled_batch + FORWARD * hp.unlabeled_batch
    if hp.teacher_recipe(method) == "contrastive":
        # a batch of pairs holds up to two sentences a pair, each encoded once; the head
        # steps run on hidden states computed once
        sentences = min(2 * hp.contrastive_batch, max(n_labeled, 1))
        stages = [
            Stage("contrastive", hp.contrastive_steps(n_labeled), FORWARD_BACKWARD * sentences),
            Stage("head", hp.head_steps, 0.01 * max(n_labeled, 1)),
        ]
    else:
        stages = [Stage("teacher", hp.teacher_steps, FORWARD_BACKWARD * hp.teacher_batch)]
    steps = hp.unlabeled_steps
    warmup = math.ceil(hp.warmup_fraction * steps) if hp.distillation_warmup else 0
    plain = steps if not hp.meta_reweighting else min(warmup, steps)
    for _ in range(hp.sessions_run(method, n_unlabeled)):
        stages.append(Stage("distill", plain, distill))
        stages.append(Stage("reweight", steps - plain, reweight))
        stages.append(Stage("labeled", hp.labeled_steps, labeled))
    return [stage for stage in stages if stage.steps > 0]


class Eta:
    """Elapsed time and the estimate of what is left; call `step(phase)` after every step."""

    def __init__(self, stages: list[Stage], clock: Callable[[], float] = time.perf_counter) -> None:
        self.stages = stages
        self.clock = clock
        self.started = clock()
        self._last = self.started
        self._done = 0
        self._costs: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=RECENT_STEPS))
        self._units = {stage.phase: stage.units for stage in stages}

    def step(self, phase: str) -> None:
        now = self.clock()
        self._costs[phase].append(now - self._last)
        self._last = now
        self._done += 1

    def elapsed_seconds(self) -> float:
        return round(self.clock() - self.started, 3)

    def eta_seconds(self) -> float | None:
        """Seconds left, or None before any step was measured."""
        measured = {phase: statistics.median(costs) for phase, costs in self._costs.items()}
        if not measured:
            return None
        per_unit = [
            cost / self._units[phase]
            for phase, cost in measured.items()
            if self._units.get(phase, 0) > 0
        ]
        unit_cost = statistics.fmean(per_unit) if per_unit else None
        left, skip = 0.0, self._done
        for stage in self.stages:
            steps = max(stage.steps - skip, 0)
            skip = max(skip - stage.steps, 0)
            if not steps:
                continue
            cost = measured.get(stage.phase)
            if cost is None:
                cost = stage.units * unit_cost if unit_cost is not None else 0.0
            left += steps * cost
        return round(left, 1)
