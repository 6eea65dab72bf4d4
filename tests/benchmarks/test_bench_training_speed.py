"""The training-speed benchmarks: the --speedups switch, the before/after table of
fast_budget, the paired accuracy check and the step schedule of the ceiling."""

import argparse

import pytest
import torch

from benchmarks import fast_budget, speedup_accuracy
from benchmarks.harness.records import append_record, read_records, record_key
from benchmarks.harness.speedups import LEVERS, parse_speedups, speedups_name
from benchmarks.micro.training_ceiling import step_batches
from list_core.hyperparams import resolve_hyperparameters
from list_core.training_forwards import NO_SPEEDUPS, TrainingSpeedups
from tests.benchmarks.conftest import TINY_STEPS


@pytest.mark.parametrize(
    "text",
    ["all", "none", "bf16", "teacher", "buckets", "bf16,fused", "bf16,teacher,buckets"],
)
def test_speedups_names_read_back_as_the_same_speedups(text):
    speedups = parse_speedups(text)
    assert parse_speedups(speedups_name(speedups)) == speedups
    assert speedups_name(speedups) == text


def test_speedups_parse_to_their_levers_and_refuse_unknown_ones():
    assert parse_speedups("all") == TrainingSpeedups()
    assert parse_speedups("none") == NO_SPEEDUPS
    assert parse_speedups(",".join(LEVERS)) == TrainingSpeedups()
    assert parse_speedups("teacher") == TrainingSpeedups("fp32", True, False, False)
    for bad in ("turbo", "fused", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_speedups(bad)


def test_fast_budget_records_its_label_and_speedups_as_another_job(
    tiny_data, tiny_roberta_path, tmp_path
):
    out = tmp_path / "fast.jsonl"
    argv = ["--data-dir", str(tiny_data), "--backbone", str(tiny_roberta_path), "--k", "6"]
    argv += [*TINY_STEPS, "--out", str(out), "--label", "pair"]
    assert fast_budget.main([*argv, "--speedups", "none"]) == 0
    assert fast_budget.main(argv) == 0
    before, after = read_records(out)
    assert before["label"] == after["label"] == "pair"
    assert before["training_speedups"] == NO_SPEEDUPS.as_dict()
    assert before["training_precision"] == "fp32" and before["speedups"] == "none"
    assert after["training_speedups"] == TrainingSpeedups().as_dict()
    assert "speedups" not in after and record_key(before) != record_key(after)


def _timing(speedups: dict | None, threads: int, cpu: float, wall: float, **extra) -> dict:
    record = {
        "date": "2026-12-07T10:00:00+00:00",
        "backbone": "mini",
        "threads": threads,
        "cpu_s": cpu,
        "wall_s": wall,
        "load_avg": [2.0, 4.0],
        "accuracy": 0.75,
        **extra,
    }
    return record if speedups is None else {**record, "training_speedups": speedups}


def test_fast_budget_shows_the_labelled_series_against_none_at_the_same_threads():
    none, every = NO_SPEEDUPS.as_dict(), TrainingSpeedups().as_dict()
    records = [
        _timing(None, 2, 468, 319),  # before the speed-ups existed: ran `none`
        _timing(none, 1, 330, 400, label="pair"),
        _timing(every, 1, 160, 250, label="pair"),
        _timing(none, 1, 340, 420, label="pair"),
        _timing(every, 1, 170, 240, label="pair"),
        _timing(every, 2, 200, 110, label="pair"),
    ]
    text = fast_budget.render(records)
    rows = [line for line in text.splitlines() if line.startswith(("| none", "| all"))]
    assert rows == [
        "| none | 1 | 2 | 335 | 1.00x | 410 | 3.0 | 75.0, 75.0 |",
        "| all | 1 | 2 | 165 | 2.03x | 245 | 3.0 | 75.0, 75.0 |",
        "| all | 2 | 1 | 200 | – | 110 | 3.0 | 75.0 |",
    ]
    assert "| 2026-12-07 10:00 | mini | all | 2 | 110 | 200 |" in text
    assert "label `pair`" in fast_budget.render(records)
    assert "### Before and after" not in fast_budget.render(records[:1])


def _job(task: str, seed: int, accuracy: float, **extra) -> dict:
    return {
        "task": task,
        "method": "list",
        "seed": seed,
        "k": 30,
        "unlabeled_cap": None,
        "backbone": "mini",
        "budget": "fast",
        "overrides": {},
        "accuracy": accuracy,
        "command": "python -m benchmarks.accuracy --methods list",
        **extra,
    }


def test_speedup_accuracy_pairs_each_job_with_its_first_earlier_run(tmp_path):
    before, after = tmp_path / "accuracy.jsonl", tmp_path / "after.jsonl"
    assert speedup_accuracy.section(after, before) is None
    for record in (
        _job("cr", 1, 0.80, cpu_s=300),
        _job("cr", 1, 0.10),  # the same job again: the first counts
        _job("cr", 2, 0.70, cpu_s=320),
        _job("cr", 1, 0.90, overrides={"sessions": 1}),  # another setting
        _job("mr", 3, 0.60),  # not rerun yet
        _job("mr", 4, 0.60),  # a seed issue 31 does not pair
    ):
        append_record(before, record)
    for record in (
        _job("cr", 1, 0.81, cpu_s=150),
        _job("cr", 2, 0.69, cpu_s=160),
        _job("trec", 1, 0.5),
    ):
        append_record(after, record)
    pairs = speedup_accuracy.paired(read_records(after), read_records(before))
    assert [(old["accuracy"], new["accuracy"]) for old, new in pairs] == [(0.8, 0.81), (0.7, 0.69)]
    text = speedup_accuracy.section(after, before)
    assert "| cr | 1,2 | 75.0 | 75.0 | +1.0, -1.0 | 310 → 155 |" in text
    assert "over 2 jobs: +0.00 points" in text and "within the ±0.5" in text
    assert (
        "standard error of the mean 1.00), within the ±0.5 points issue 31 allows, "
        "but too few pairs to tell" in text
    )
    assert "2 of the 3 jobs" in text and "not yet: mr seed 3." in text


def test_the_ceiling_times_the_fast_schedule_s_every_forward_and_backward():
    hp = resolve_hyperparameters({"budget": "fast"}, 30, 2000)
    batches = step_batches(hp, 30, 2000, torch.Generator().manual_seed(0))
    assert len(batches) == hp.total_steps("list", 2000) == 550
    assert sum(len(rows) for _, rows in batches) == 150 * 8 + 2 * (150 * 16 + 50 * 8)
    assert all(max(rows) < (30 if labelled else 2000) for labelled, rows in batches)
