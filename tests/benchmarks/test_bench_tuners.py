"""The tuner benchmark: adapter jobs keep their old keys, the table scores the seven tasks by
their metric, and the findings name the leader only among complete rows."""

import argparse

from benchmarks import accuracy, tuners_table
from benchmarks.harness.fewshot import Task
from benchmarks.harness.records import append_record, record_key
from list_core.prompts import TaskSpec
from list_core.training_forwards import TrainingSpeedups


def _record(task, method, tuner, seed, accuracy_value, **extra):
    return {
        "task": task,
        "method": method,
        "tuner": tuner,
        "seed": seed,
        "k": 30,
        "unlabeled_cap": None,
        "backbone": "mini",
        "budget": "fast",
        "overrides": {},
        "accuracy": accuracy_value,
        "macro_f1": accuracy_value - 0.2,
        "trainable_params": 10,
        "adapter_bytes": 100 if tuner == "lora" else 400,
        "wall_s": 5.0,
        "date": "2026-12-07T00:00:00Z",
        **extra,
    }


def test_adapter_jobs_keep_the_keys_they_had_before_tuners() -> None:
    args = argparse.Namespace(k=30, unlabeled_cap=None, backbone="mini", budget="fast")
    args.overrides, args.speedups = {}, TrainingSpeedups()
    task = Task("sst-2", TaskSpec.create(["a", "b"]), (), ())
    assert "tuner" not in accuracy.job_identity(args, task, "prompt", 1)
    lora = accuracy.job_identity(args, task, "prompt", 1, "lora")
    assert lora["tuner"] == "lora"
    adapter = accuracy.job_identity(args, task, "prompt", 1)
    assert record_key({**adapter, "tuner": "adapter"}) == record_key(adapter) != record_key(lora)


def test_the_table_scores_by_the_tasks_metric_and_finds_leaders_among_complete_rows(tmp_path):
    results, adapters, serving = (tmp_path / name for name in ("t.jsonl", "a.jsonl", "s.jsonl"))
    for task in tuners_table.TASKS:
        for seed in (1, 2, 3):
            append_record(results, _record(task, "prompt", "lora", seed, 0.8))
            append_record(adapters, _record(task, "prompt", "adapter", seed, 0.7))
    append_record(results, _record("sst-2", "prompt", "bitfit", 1, 0.99))  # one task only
    append_record(serving, {"tuner": "lora", "relative": 1.5, "forward": "eager"})
    out = tmp_path / "tuners.md"
    argv = ["--results", str(results), "--adapter-results", str(adapters)]
    assert tuners_table.main([*argv, "--serving", str(serving), "--out", str(out)]) == 0
    text = out.read_text()
    lora = next(line for line in text.splitlines() if line.startswith("| lora | prompt"))
    assert "| 74.3% | 7/7 |" in lora  # 5 tasks at 80 %, sst-5 and trec by macro-F1 (60 %)
    assert "| 1.50 | eager |" in lora
    assert "| bitfit | prompt | - | 0/7 |" in text  # one seed of one task: no mean yet
    assert "`lora` leads at 74.3% (adapter: 64.3%)" in text
    assert "Bytes: `lora` stores the least" in text
