"""The time-left estimate prices each phase by its own measured step cost, so a job whose
re-weighting steps cost more than its teacher steps is not misjudged by counting steps."""

import pytest

from list_core.backbone import load_backbone
from list_core.eta import Eta, Stage, training_plan
from list_core.hyperparams import resolve_hyperparameters
from list_core.prompts import TaskSpec
from list_core.training import train_task
from tests.engine.helpers import EXAMPLES, UNLABELED


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# Seconds per step of each phase in the simulated job below, in the ratios measured for the
# tiny RoBERTa on the 2-core CPU with one torch thread (median ms: teacher 12.9, distill 27.8,
# reweight 43.2, labelled 10.6), ten times slower: re-weighting costs the most, over 3x a
# teacher step.
COSTS = {"teacher": 0.129, "distill": 0.278, "reweight": 0.432, "labeled": 0.106}
PLAN = [
    Stage("teacher", 100, 24.0),
    Stage("distill", 60, 64.0),
    Stage("reweight", 40, 104.0),
    Stage("labeled", 50, 24.0),
    Stage("distill", 60, 64.0),
    Stage("reweight", 40, 104.0),
    Stage("labeled", 50, 24.0),
]


def _run_until(eta: Eta, clock: FakeClock, steps: int) -> float:
    """Run `steps` steps of the plan; returns the true seconds the rest will take."""
    order = [stage.phase for stage in PLAN for _ in range(stage.steps)]
    for phase in order[:steps]:
        clock.now += COSTS[phase]
        eta.step(phase)
    return sum(COSTS[phase] for phase in order[steps:])


@pytest.mark.parametrize("done", [50, 120, 180, 280])
def test_the_estimate_prices_every_phase_by_its_measured_cost(done: int) -> None:
    clock = FakeClock()
    eta = Eta(PLAN, clock)
    left = _run_until(eta, clock, done)
    estimate = eta.eta_seconds()
    assert estimate == pytest.approx(left, rel=0.3)
    naive = clock.now / done * (400 - done)  # a bar that counts steps as equal
    assert abs(estimate - left) < abs(naive - left)
    if done >= 230:  # every phase measured: the estimate is exact
        assert estimate == pytest.approx(left, abs=0.1)  # (rounded to 0.1 s)


def test_an_unmeasured_phase_is_priced_from_its_work_at_the_measured_rate() -> None:
    clock = FakeClock()
    eta = Eta([Stage("teacher", 10, 10.0), Stage("distill", 10, 30.0)], clock)
    for _ in range(5):
        clock.now += 1.0
        eta.step("teacher")
    assert eta.eta_seconds() == pytest.approx(5 * 1.0 + 10 * 3.0)
    assert eta.elapsed_seconds() == 5.0


def test_no_estimate_before_the_first_step() -> None:
    assert Eta(PLAN, FakeClock()).eta_seconds() is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"budget": "fast"},
        {"budget": "fast", "meta_reweighting": False},
        {"budget": "fast", "distillation_warmup": False, "sessions": 3},
    ],
)
@pytest.mark.parametrize("method,unlabeled", [("list", 40), ("list", 0), ("prompt", 40)])
def test_the_plan_has_the_steps_training_takes(overrides, method, unlabeled) -> None:
    hp = resolve_hyperparameters(overrides, 8, unlabeled, "cpu", method)
    plan = training_plan(hp, method, unlabeled)
    assert sum(stage.steps for stage in plan) == hp.total_steps(method, unlabeled)


def test_the_plan_follows_the_phases_train_task_reports(tiny_roberta_path) -> None:
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    spec = TaskSpec.create(["negative", "positive"], None, {"negative": "bad", "positive": "good"})
    overrides = {"budget": "fast", "teacher_steps": 4, "unlabeled_steps": 5, "labeled_steps": 2}
    seen: list[str] = []
    reports = []

    def progress(report) -> None:
        if report.step:
            seen.append(report.phase)
            reports.append(report)

    result = train_task(backbone, spec, EXAMPLES, UNLABELED, "list", overrides, progress=progress)
    plan = training_plan(result.hyperparameters, "list", len(UNLABELED))
    assert seen == [stage.phase for stage in plan for _ in range(stage.steps)]
    assert all(r.elapsed_seconds is not None and r.eta_seconds is not None for r in reports)
    assert reports[-1].eta_seconds == 0
