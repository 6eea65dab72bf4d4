"""The accuracy harness end to end on tiny backbones: records, resume, methods, fast budget."""

import json

import pytest

from benchmarks import fast_budget
from benchmarks.accuracy import main
from benchmarks.harness import records
from benchmarks.harness.arguments import parse_overrides
from benchmarks.harness.records import (
    append_record,
    finished_keys,
    read_records,
    record_key,
    unique_records,
)
from tests.benchmarks.conftest import TINY_STEPS
from tests.tiny_models import build_tiny_bert

REQUIRED = {
    "task",
    "method",
    "seed",
    "k",
    "n_unlabeled",
    "backbone",
    "accuracy",
    "macro_f1",
    "trainable_params",
    "adapter_bytes",
    "wall_s",
    "budget",
    "commit",
    "date",
    "history",
}


def _run(tiny_data, backbone, out, methods, seeds="1", extra=()):
    argv = [
        "--data-dir",
        str(tiny_data),
        "--backbone",
        str(backbone),
        "--methods",
        methods,
        "--seeds",
        seeds,
        "--k",
        "6",
        "--pseudo-eval",
        "10",
        "--out",
        str(out),
        *TINY_STEPS,
        *extra,
    ]
    assert main(argv) == 0
    return read_records(out)


@pytest.fixture(scope="module")
def roberta_run(tiny_data, tiny_roberta_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "accuracy.jsonl"
    methods = "majority,zero-shot,classic,prompt,list,list-no-reweight,full-prompt"
    records = _run(
        tiny_data, tiny_roberta_path, out, methods, extra=["--full-steps", "2", "--full-batch", "4"]
    )
    return out, records


def test_every_job_writes_a_complete_record(roberta_run):
    _, records = roberta_run
    assert len(records) == 2 * 7  # two tasks
    for record in records:
        assert set(record) >= REQUIRED, REQUIRED - set(record)
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["macro_f1"] <= 1.0
        assert len(record["commit"]) == 40 or record["commit"] == "unknown"
        assert record["n_test"] == 20 and record["budget"] == "fast"


def test_labels_unlabelled_and_costs_per_method(roberta_run):
    _, records = roberta_run
    by = {(r["task"], r["method"]): r for r in records}
    lst = by[("three", "list")]
    assert lst["k"] == 6 and lst["n_unlabeled"] == 54
    assert lst["labeled_counts"]["neutral"] == 1 and sum(lst["labeled_counts"].values()) == 6
    assert lst["cpu_s"] > 0 and lst["wall_s"] > 0
    assert lst["trainable_params"] > 0 and lst["adapter_bytes"] > 4 * lst["trainable_params"] // 2
    assert by[("three", "prompt")]["n_unlabeled"] == 0
    assert by[("three", "majority")]["trainable_params"] == 0
    assert by[("three", "majority")]["predicted_label"] in ("negative", "positive")
    assert by[("three", "full-prompt")]["k"] == 60
    assert by[("three", "full-prompt")]["n_unlabeled"] == 0
    assert by[("sst-2", "list-no-reweight")]["hyperparameters"]["meta_reweighting"] is False
    assert by[("sst-2", "list")]["hyperparameters"]["teacher_steps"] == 3
    assert by[("sst-2", "list")]["overrides"]["teacher_steps"] == 3


def test_zero_shot_is_the_untrained_prompt_model(roberta_run):
    _, records = roberta_run
    by = {(r["task"], r["method"]): r for r in records}
    zero, prompt = by[("sst-2", "zero-shot")], by[("sst-2", "prompt")]
    assert zero["head_kind"] == prompt["head_kind"] == "mlm"
    assert zero["trainable_params"] == prompt["trainable_params"]
    assert zero["history"] == [
        {
            "session": 0,
            "phase": "zero-shot",
            "evaluation_accuracy": pytest.approx(zero["history"][0]["evaluation_accuracy"]),
        }
    ]


def test_list_history_reports_pseudo_label_accuracy_per_session(roberta_run):
    _, records = roberta_run
    lst = next(r for r in records if r["method"] == "list")
    assert [h["session"] for h in lst["history"]] == [0, 1, 2]
    assert all(0.0 <= h["evaluation_accuracy"] <= 1.0 for h in lst["history"])
    assert lst["pseudo_eval_n"] == 10


def test_rerun_skips_finished_jobs_and_runs_new_seeds(roberta_run, tiny_data, tiny_roberta_path):
    out, before = roberta_run
    methods = "majority,zero-shot,classic,prompt,list,list-no-reweight,full-prompt"
    after = _run(
        tiny_data,
        tiny_roberta_path,
        out,
        methods,
        extra=["--full-steps", "2", "--full-batch", "4"],
    )
    assert after == before
    grown = _run(tiny_data, tiny_roberta_path, out, "majority", seeds="1,2")
    assert len(grown) == len(before) + 2
    assert {r["seed"] for r in grown[len(before) :]} == {2}


def test_similarity_head_backbone_runs_the_same_command(tiny_data, tmp_path):
    bare = build_tiny_bert(tmp_path / "bare-bert", mlm_head=False)
    records = _run(
        tiny_data, bare, tmp_path / "r.jsonl", "zero-shot,list", extra=["--tasks", "sst-2"]
    )
    assert {r["head_kind"] for r in records} == {"similarity"}


def test_results_file_tolerates_a_cut_line_and_keys_on_the_setting(tmp_path):
    path = tmp_path / "r.jsonl"
    record = {
        "task": "cr",
        "method": "list",
        "seed": 1,
        "k": 30,
        "unlabeled_cap": None,
        "backbone": "b",
        "budget": "fast",
        "overrides": {},
    }
    append_record(path, record)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"task": "cr", "meth')
    assert read_records(path) == [record]
    assert finished_keys(path) == {record_key(record)}
    assert record_key({**record, "overrides": {"student_lr": 1e-4}}) != record_key(record)
    assert record_key({**record, "accuracy": 0.9}) == record_key(record)


def test_overrides_parse_json_values_and_reject_unknown_keys(tiny_data):
    assert parse_overrides(["student_lr=3e-4", "meta_reweighting=false", "placement=ffn"]) == {
        "student_lr": 3e-4,
        "meta_reweighting": False,
        "placement": "ffn",
    }
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tiny_data), "--set", "learning_rate=1"])
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tiny_data), "--tasks", "nope"])


def test_fast_budget_command_records_wall_time(tiny_data, tiny_roberta_path, tmp_path):
    out = tmp_path / "fast.jsonl"
    argv = ["--data-dir", str(tiny_data), "--backbone", str(tiny_roberta_path), "--k", "6"]
    assert fast_budget.main([*argv, *TINY_STEPS, "--out", str(out)]) == 0
    (record,) = read_records(out)
    assert record["method"] == "list" and record["unlabeled_cap"] == 2000
    assert record["wall_s"] < fast_budget.LIMIT_S
    assert json.loads(out.read_text())["budget"] == "fast"
    assert fast_budget.main([*argv, *TINY_STEPS, "--out", str(out)]) == 0
    assert len(read_records(out)) == 2  # a timing benchmark measures again on every call


def test_a_job_recorded_twice_counts_once(tmp_path):
    first = {"task": "cr", "method": "list", "seed": 1, "overrides": {}, "accuracy": 0.8}
    again = {**first, "accuracy": 0.7}
    other = {**first, "seed": 2}
    assert unique_records([first, again, other]) == [first, other]


def test_the_cpu_model_names_the_processor_and_whether_it_has_bf16(tmp_path) -> None:
    """Serving records carry it: `auto` precision serves bf16 only on a CPU with avx512_bf16."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert records.cpu_model(cpuinfo) == "Test CPU 9000 (avx512_bf16)"
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu avx2\n")
    assert records.cpu_model(cpuinfo) == "Old CPU (no avx512_bf16)"
