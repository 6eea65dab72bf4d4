"""The generated tables: aggregation over seeds, the upper bound, the four targets, pairing."""

from pathlib import Path

import pytest

from benchmarks import (
    accuracy_table,
    experiments_table,
    results_page,
    selection_table,
    serving_report,
)
from benchmarks.harness.accuracy_records import select
from benchmarks.harness.records import append_record, read_records


def _record(task, method, seed, accuracy, **extra):
    record = {
        "task": task,
        "method": method,
        "seed": seed,
        "k": 30,
        "unlabeled_cap": None,
        "backbone": "mini",
        "budget": "fast",
        "overrides": {},
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.1,
        "trainable_params": 100,
        "adapter_bytes": 400,
        "wall_s": 10.0,
        "eval_s": 2.0,
        "n_unlabeled": 500 if method.startswith("list") else 0,
        "history": [],
        "command": "python -m benchmarks.accuracy --seeds 1,2",
        "commit": "a" * 40,
        "date": "2026-01-01T00:00:00+00:00",
    }
    return {**record, **extra}


def _records(list_on_b=0.80):
    rows = []
    for seed, noise in ((1, -0.01), (2, 0.01)):
        for task, lst in (("sst-2", 0.84), ("trec", list_on_b)):
            rows += [
                _record(task, "zero-shot", seed, 0.70 + noise),
                _record(task, "classic", seed, 0.70 + noise),
                _record(task, "prompt", seed, 0.76 + noise),
                _record(task, "list", seed, lst + noise),
            ]
    rows += [
        _record("sst-2", "full-prompt", 1, 0.88, k=7792),
        _record("sst-2", "full-classic", 1, 0.86, k=7792),
        _record("trec", "full-classic", 1, 0.84, k=5452),
    ]
    return rows


def test_cells_average_seeds_and_upper_bound_takes_the_better_full_row():
    cells = accuracy_table.aggregate(_records())
    cell = cells[("list", "sst-2")]
    assert abs(cell.accuracy - 0.84) < 1e-9 and abs(cell.accuracy_std - 0.01414) < 1e-4
    assert cell.seeds == (1, 2)
    chosen = accuracy_table.add_upper_bound(cells, ["sst-2", "trec"])
    assert chosen == {"sst-2": "full-prompt", "trec": "full-classic"}


def test_targets_hold_and_fail_from_the_numbers():
    tasks = ["sst-2", "trec"]
    cells = accuracy_table.aggregate(_records())
    accuracy_table.add_upper_bound(cells, tasks)
    prompt, classic, upper, zero = accuracy_table.targets(cells, tasks)
    assert prompt.holds and prompt.value == "+6.0 points"
    assert classic.holds and classic.value == "+12.0 points"
    assert upper.value == f"{(0.84 / 0.88 + 0.80 / 0.84) / 2:.3f}" and upper.holds
    assert zero.holds
    cells = accuracy_table.aggregate(_records(list_on_b=0.69))
    accuracy_table.add_upper_bound(cells, tasks)
    prompt, _, upper, zero = accuracy_table.targets(cells, tasks)
    assert not prompt.holds and not upper.holds
    assert not zero.holds and zero.value == "not on trec"


def test_ablations_are_paired_with_list_on_the_same_task_and_seed():
    rows = [
        *_records(),
        _record("sst-2", "list-no-reweight", 1, 0.80),
        _record("sst-2", "list-no-reweight", 2, 0.81),
        _record("trec", "list-no-reweight", 1, 0.82),
        _record("trec", "list-no-reweight", 3, 0.10),
    ]
    lines = accuracy_table.ablation_table(rows, ["sst-2", "trec"])
    assert len(lines) == 3
    assert lines[2] == "| list-no-reweight | -3.5 | +3.0 | -0.3 | 1/2 tasks | 3 |"


def test_select_leaves_out_overrides_and_other_settings():
    records = [
        *_records(),
        _record("sst-2", "list", 3, 0.1, overrides={"student_lr": 1e-4}),
        _record("sst-2", "list", 3, 0.1, budget="standard"),
        _record("sst-2", "list", 3, 0.1, k=16),
    ]
    chosen = select(records, "mini", "fast", 30, None)
    assert len(chosen) == len(_records())


def test_markdown_names_command_and_date_and_marks_missing_seeds():
    records = [*_records(), _record("sst-2", "list-no-warmup", 1, 0.8, n_unlabeled=500)]
    setting = {"backbone": "mini", "budget": "fast", "k": 30, "unlabeled_cap": None}
    text = accuracy_table.render(records, setting, Path("r.jsonl"))
    assert "(dated 2026-01-01)" in text
    assert "Table: `python -m benchmarks.accuracy_table --backbone mini`" in text
    assert "python -m benchmarks.accuracy --seeds 1,2" in text
    assert "| list | 84.0 ± 1.4 | 80.0 ± 1.4 | 82.0 |" in text
    assert "| list-no-warmup | 80.0 (n=1) | — | — |" in text
    assert "| upper bound | 88.0 | 84.0 | 86.0 |" in text
    assert accuracy_table.render(records, setting, Path("r.jsonl")) == text  # no clock in it
    partial = accuracy_table.render(records, setting, Path("r.jsonl"), planned_seeds=[1, 2, 3])
    assert "Seeds: 1, 2 (planned: 1, 2, 3)" in partial
    assert "--backbone mini --planned-seeds 1,2,3`" in partial
    assert "| list | 84.0 ± 1.4 (n=2) | 80.0 ± 1.4 (n=2) | 82.0 |" in partial


def test_experiments_are_paired_with_the_default_run_on_the_same_seed(tmp_path):
    defaults, experiments = tmp_path / "a.jsonl", tmp_path / "e.jsonl"
    for record in _records():
        append_record(defaults, record)
    override = {"teacher_lr": 1e-4}
    append_record(experiments, _record("sst-2", "prompt", 1, 0.80, overrides=override))
    append_record(experiments, _record("sst-2", "prompt", 9, 0.70, overrides=override))
    out = tmp_path / "e.md"
    argv = ["--results", str(experiments), "--defaults", str(defaults), "--out", str(out)]
    assert experiments_table.main([*argv, "--backbone", "mini"]) == 0
    text = out.read_text()
    # seed 1 pairs with the default 0.75 (+5.0); seed 9 has no default run and is not paired
    assert "| prompt | teacher_lr=0.0001 | 75.0 (+5.0) | +5.0 |" in text


def test_an_added_setting_is_paired_with_the_experiment_it_extends():
    rate = {"teacher_lr": 1e-4}
    both = {**rate, "balance_pseudo_labels": True}
    experiments = [
        _record("sst-2", "list", 1, 0.70, overrides=rate),
        _record("sst-2", "list", 1, 0.74, overrides=both),
        _record("trec", "list", 1, 0.60, overrides=rate),
        _record("trec", "list", 1, 0.58, overrides=both),
        _record("trec", "list", 2, 0.90, overrides=both),
        _record("trec", "list", 1, 0.10, overrides={"teacher_lr": 3e-4, "bottleneck": 8}),
    ]
    pairs = experiments_table.nested_pairs(experiments)
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair["added"], pair["base"], pair["pairs"]) == (
        "balance_pseudo_labels=True",
        "teacher_lr=0.0001",
        2,
    )
    assert pair["deltas"] == pytest.approx({"sst-2": 0.04, "trec": -0.02})
    row = experiments_table.render_nested(pairs)[4]
    assert row.endswith("| +4.0 | -2.0 | +1.0 | 1/2 tasks | 2 |")


def test_results_page_renders_each_benchmark_from_its_records(tmp_path: Path) -> None:
    fast = tmp_path / "fast_budget.jsonl"
    for wall, date in ((799.3, "2026-11-22T06:52:14+00:00"), (402.0, "2026-11-23T03:30:00+00:00")):
        append_record(
            fast,
            _record("sst-2", "list", 1, 0.739, wall_s=wall, cpu_s=361.4, threads=1, date=date)
            | {"load_avg": [5.95, 3.99]},
        )
    for record in _records():
        append_record(tmp_path / "accuracy.jsonl", {**record, "backbone": "all-MiniLM-L6-v2"})
    page = results_page.render(tmp_path)
    rows = [line for line in page.splitlines() if line.startswith("| 2026-")]
    assert rows == ["| 2026-11-23 03:30 | mini | none | 1 | 402 | 361 | 6.0, 4.0 | yes | 73.9 |"]
    assert page.index("## Training time") < page.index("## Accuracy: LiST vs baselines")
    assert "python -m benchmarks.fast_budget" in page and "budget `fast`" in page
    assert "budget `auto`" not in page and "## Serving" not in page  # no records, no section
    assert results_page.render(tmp_path) == page


def _point(run: str, mode: str, rows: float, env: tuple[str, ...] = (), **extra: str) -> dict:
    """A closed-loop serving record at 128 adapters, uniform, concurrency 64."""
    return {
        "run": run,
        "mode": mode,
        "load": "closed",
        "rows_per_s": rows,
        "server_env": list(env),
        "commit": "c" * 40,
        "adapters": 128,
        "traffic": "uniform",
        "concurrency": 64,
        "p50_ms": 500.0,
        "p99_ms": 900.0,
        "rss_mb": 800.0,
        **extra,
    }


def test_precision_section_compares_runs_to_the_first_and_reads_the_precision() -> None:
    bf16 = ("LISTSERVE_SERVING_PRECISION=bf16",)
    records = [
        _point("base", "mixed", 60.0),
        _point("base", "unbatched", 40.0),
        _point("fast", "mixed", 120.0, bf16),
        _point("fast", "unbatched", 48.0, bf16),
    ]
    section = serving_report.precision_section(records, ["base", "fast"])
    assert section.startswith("### Serving precision over HTTP (runs `base`, `fast`)")
    rows = section.splitlines()[-2:]
    assert rows[0].split(" | ")[:6] == [
        "| fp32",
        "128 adapters, uniform, c=64",
        "60.0",
        "40.0",
        "1.50",
        "1.00",
    ]
    assert rows[1].split(" | ")[:6] == [
        "| bf16",
        "128 adapters, uniform, c=64",
        "120.0",
        "48.0",
        "2.50",
        "2.00",
    ]


def test_precision_section_names_the_code_and_the_cpu_where_the_records_do() -> None:
    newer = {"cpu_model": "AMD EPYC (avx512_bf16)", "commit": "abcdef0123"}
    records = [
        _point("old", "mixed", 50.0, commit="9876543210"),
        _point("new", "mixed", 200.0, **newer),
        _point("newer", "mixed", 300.0, **newer),
    ]
    new_table = serving_report.precision_section(records, ["new", "newer"])
    assert "CPU: AMD EPYC (avx512_bf16); server code `abcdef0`." in new_table
    assert "| fp32 | 128 adapters, uniform, c=64 | 300.0 | – | – | 1.50 |" in new_table
    old_table = serving_report.precision_section(records, ["old"])
    assert "CPU:" not in old_table
    assert "server code `9876543`." in old_table


def test_apply_section_pairs_alone_and_contended_runs_of_the_newest_commit() -> None:
    def record(commit: str, mode: str, distinct: int, rows: float, contended: bool) -> dict:
        return {
            "commit": commit,
            "apply_mode": mode,
            "distinct_adapters": distinct,
            "rows": 32,
            "rows_per_s": rows,
            "cpu_ms_p50": 1000 * 32 / rows,
            "torch_threads": 1,
            "mean_tokens": 20.0,
            "max_tokens": 50,
            "contended": contended,
        }

    records = [
        record("old", "gather", 32, 1.0, False),
        record("new", "gather", 32, 60.0, False),
        record("new", "scripted-group", 32, 80.0, False),
        record("new", "gather", 32, 2.0, True),
        record("new", "scripted-group", 32, 64.0, True),
    ]
    rows = serving_report.apply_section(records).strip().splitlines()[-2:]
    assert rows[0] == "| eager `gather` | 32 | 60.0 | 533.3 | 2.0 |"
    assert rows[1] == "| scripted `group` | 32 | 80.0 | 400.0 | 64.0 |"
    assert serving_report.apply_section([]) == ""


def test_apply_section_takes_each_kind_from_its_own_newest_commit() -> None:
    """A later `--contended` run alone must not blank the table's rows/s measured alone."""
    base = {"rows": 32, "torch_threads": 1, "mean_tokens": 20.0, "max_tokens": 50}
    records = [
        {
            **base,
            "commit": "alone123456789",
            "apply_mode": "gather",
            "distinct_adapters": 32,
            "rows_per_s": 60.0,
            "cpu_ms_p50": 533.3,
            "contended": False,
        },
        {
            **base,
            "commit": "busy1234567890",
            "apply_mode": "gather",
            "distinct_adapters": 32,
            "rows_per_s": 2.0,
            "cpu_ms_p50": 900.0,
            "contended": True,
        },
    ]
    section = serving_report.apply_section(records)
    assert "(commit `alone1234567` (alone) and `busy12345678` (contended))" in section
    assert section.strip().splitlines()[-1] == "| eager `gather` | 32 | 60.0 | 533.3 | 2.0 |"


def test_apply_target_is_not_met_without_a_run_alone() -> None:
    contended_only = [
        {
            "commit": "c",
            "apply_mode": "gather",
            "distinct_adapters": d,
            "rows_per_s": 1.0,
            "rows_per_cpu_s": 1.0,
            "contended": True,
        }
        for d in (1, 32)
    ]
    for records in ([], contended_only):
        lines, ok = serving_report.apply_target(records)
        assert ok is None and lines == ["no adapter_apply run alone with 1 and 32 adapters"]


def _sweep_record(mode: str, adapters: int, rows_per_s: float = 100.0, **fields) -> dict:
    """One closed-loop serving record at concurrency 64 with every field `build` reads."""
    return {
        "mode": mode,
        "adapters": adapters,
        "traffic": "uniform",
        "concurrency": 64,
        "load": "closed",
        "rows_per_s": rows_per_s,
        "rss_mb": 600.0,
        "commit": "abc",
        "backbone": "minilm",
        "cpus": 2,
        "rows_per_request": 1,
        "warmup_s": 2,
        "duration_s": 5,
        "cache_budget_mb": 256,
        "adapter_bytes": 2**20,
        "max_batch_rows": 32,
        "max_wait_ms": 5,
        **fields,
    }


def test_a_over_d_is_judged_where_there_is_more_than_one_adapter_to_swap() -> None:
    def ad_line(swap_at_16: float) -> str:
        records = [
            _sweep_record("mixed", 1),
            _sweep_record("swap", 1),
            _sweep_record("mixed", 16),
            _sweep_record("swap", 16, swap_at_16),
        ]
        report = serving_report.build(records, [], "run")
        return next(line for line in report.splitlines() if line.startswith("- a/d"))

    assert ad_line(40.0).startswith("- a/d >= 2 (concurrency 64, more than one adapter): met")
    assert "min 2.50" in ad_line(40.0) and "runs what mixed runs: min 1.00" in ad_line(40.0)
    assert "**missed** (min 1.25" in ad_line(80.0)


def _apply_record(commit: str, mode: str, distinct: int, rows_per_s: float, **extra) -> dict:
    """An adapter_apply record whose wall and CPU rates are the same."""
    return {
        "commit": commit,
        "apply_mode": mode,
        "distinct_adapters": distinct,
        "rows_per_s": rows_per_s,
        "rows_per_cpu_s": rows_per_s,
        **extra,
    }


def test_apply_target_judges_every_forward_of_the_newest_commit() -> None:
    record = _apply_record
    records = [
        record("old", "scripted", 1, 100.0),
        record("old", "scripted", 32, 50.0),
        record("new", "none", 0, 120.0),
        record("new", "gather", 1, 100.0),
        record("new", "gather", 32, 90.0),
        record("new", "scripted-group", 1, 100.0),
        record("new", "scripted-group", 32, 98.0),
    ]
    lines, ok = serving_report.apply_target(records)
    assert ok is True
    assert lines == [
        "eager `gather`: 32 distinct / 1 adapter = 0.90 (CPU time), 0.90 (min wall)",
        "scripted `group`: 32 distinct / 1 adapter = 0.98 (CPU time), 0.98 (min wall)",
    ]
    _, ok = serving_report.apply_target(records[:2])
    assert ok is False
    assert serving_report.forward_name("scripted") == "scripted `gather`"


def test_apply_target_takes_the_run_on_the_sweeps_cpu() -> None:
    """A sweep is judged with the forward measured on its own CPU, even when another CPU's run
    is newer; with none on its CPU, the newest run."""

    def record(commit: str, cpu: str, distinct: int, rows_per_s: float) -> dict:
        return _apply_record(commit, "scripted-group", distinct, rows_per_s, cpu_model=cpu)

    records = [
        record("amx", "Xeon", 1, 100.0),
        record("amx", "Xeon", 32, 80.0),
        record("zen", "EPYC", 1, 100.0),
        record("zen", "EPYC", 32, 95.0),
    ]
    assert serving_report.apply_target(records, "Xeon") == (
        ["scripted `group`: 32 distinct / 1 adapter = 0.80 (CPU time), 0.80 (min wall)"],
        False,
    )
    assert serving_report.apply_target(records, "EPYC")[1] is True
    assert serving_report.apply_target(records, "another CPU")[1] is True
    assert serving_report.apply_target(records)[1] is True


def test_apply_target_judges_the_served_forward_where_a_run_marks_it() -> None:
    """A slower forward the service does not run (here `gather`) is listed, not judged."""

    def record(mode: str, distinct: int, rows_per_cpu_s: float, served: bool) -> dict:
        return {
            "commit": "new",
            "apply_mode": mode,
            "distinct_adapters": distinct,
            "rows_per_s": rows_per_cpu_s,
            "rows_per_cpu_s": rows_per_cpu_s,
            "served": served,
        }

    records = [
        record("scripted-gather", 1, 100.0, False),
        record("scripted-gather", 32, 80.0, False),
        record("scripted-group", 1, 100.0, True),
        record("scripted-group", 32, 88.0, True),
    ]
    lines, ok = serving_report.apply_target(records)
    assert ok is True
    assert lines[1] == (
        "scripted `group` (the service's forward): 32 distinct / 1 adapter = 0.88 (CPU time), "
        "0.88 (min wall)"
    )
    records[-1] = record("scripted-group", 32, 84.0, True)
    assert serving_report.apply_target(records)[1] is False


def test_rss_target_is_judged_on_peaks_and_reports_medians_beside_them() -> None:
    def record(adapters: int, peak: float, median: float | None) -> dict:
        medians = {} if median is None else {"rss_median_mb": median}
        return _sweep_record("mixed", adapters, rss_mb=peak, **medians)

    def rss_line(*records: dict) -> str:
        report = serving_report.build(list(records), [], "run")
        return next(line for line in report.splitlines() if "cache budget to RSS" in line)

    # The largest one-adapter point is the baseline; the medians never decide the verdict.
    line = rss_line(record(1, 600, 590), record(1, 610, 595), record(1024, 870, 845))
    assert "**missed**" in line and "+260.0 MB; budget 256 MB" in line
    assert "845 vs 595 MB, +250.0 MB" in line
    line = rss_line(record(1, 610, None), record(1024, 860, None))  # records from before medians
    assert ": met" in line and "+250.0 MB; budget 256 MB)." in line and "medians" not in line


def test_rss_target_shows_what_the_process_holds_beside_the_cache() -> None:
    def record(adapters: int, peak: float, cache_mib: float) -> dict:
        return _sweep_record("mixed", adapters, rss_mb=peak, cache_bytes=int(cache_mib * 2**20))

    report = serving_report.build(
        [record(1, 700, 1), record(1, 690, 1), record(1024, 960, 255)], [], "run"
    )
    line = next(line for line in report.splitlines() if "cache budget to RSS" in line)
    assert "+260.0 MB" in line  # the verdict still compares the peaks
    assert "beside the cache (peak RSS minus the cache's bytes): 705 vs 699 MB, +6.0 MB" in line
    assert "anonymous memory alone" not in line  # records from before the split


def test_rss_target_shows_the_anonymous_memory_apart_from_mapped_files() -> None:
    records = [
        _sweep_record("mixed", 1, rss_mb=760, rss_anon_mb=440),
        _sweep_record("mixed", 1024, rss_mb=1020, rss_anon_mb=694),
    ]
    line = next(
        line
        for line in serving_report.build(records, [], "run").splitlines()
        if "cache budget to RSS" in line
    )
    assert "**missed**" in line and "+260.0 MB" in line
    assert "follow the page cache): 694 vs 440 MB, +254.0 MB" in line


def test_the_results_page_takes_the_newest_full_sweep_and_precision_runs() -> None:
    """One-setting A/B runs after a sweep do not replace it, and the precision table takes the
    newest one-point run of each precision, fp32 first."""

    def sweep(run: str) -> list[dict]:
        closed = [
            _sweep_record(mode, adapters, run=run)
            for mode in serving_report.MODES
            for adapters in (1, 16, 128, 1024)
        ]
        return [*closed, _sweep_record("mixed", 128, run=run, load="open")]

    fp32, bf16 = ("LISTSERVE_SERVING_PRECISION=fp32",), ("LISTSERVE_SERVING_PRECISION=bf16",)
    records = [
        *sweep("old-sweep"),
        _point("prec-old-fp32", "mixed", 50.0, fp32),
        *sweep("new-sweep"),
        _point("prec-bf16", "mixed", 120.0, bf16),
        _point("prec-fp32", "mixed", 60.0, fp32),
        _sweep_record("mixed", 1024, run="ab-probe"),
    ]
    assert serving_report.latest_full_sweep(records) == "new-sweep"
    assert serving_report.latest_precision_runs(records) == ["prec-fp32", "prec-bf16"]
    section = serving_report.section(records, [])
    assert section.startswith("## Serving speed (issue 6), run `new-sweep`")
    assert "(runs `prec-fp32`, `prec-bf16`)" in section and "old-sweep" not in section
    assert serving_report.latest_full_sweep(records[-1:]) is None


def _auto(task, method, seed, accuracy, **extra):
    return _record(task, method, seed, accuracy, budget="auto", backbone="mini", **extra)


def test_the_selection_section_marks_partial_rows_and_checks_the_targets(tmp_path: Path) -> None:
    """Complete rows get a mean and the four targets; a row on fewer tasks shows its mean as
    partial (`1/2 tasks`) and no target; cv rows show ECE before and after; SetFit, which
    stores no adapter, renders in the cost table."""
    results = tmp_path / "accuracy.jsonl"
    selection = {"choice": "prior", "cv_accuracy": 0.8, "temperature": 2.0, "prior_weight": 0.0}
    for seed in (1, 2, 3):
        rows = [_auto("sst-2", "prompt-cv", seed, 0.72, ece=0.03, ece_uncalibrated=0.09)]
        rows[0].update(selection=selection, cpu_s=5.0)
        for task, prior in (("sst-2", 0.70), ("trec", 0.50)):
            rows += [
                _auto(task, "zero-shot", seed, prior),
                _auto(task, "setfit", seed, prior - 0.10, adapter_bytes=None, ece=0.2),
                _auto(task, "list", seed, prior + 0.08, ece=0.04),
                _auto(task, "full-prompt", seed, 0.90, k=5000),
            ]
        for record in rows:
            append_record(results, record)
    text = selection_table.section(results, {**selection_table.SETTING, "backbone": "mini"})
    lines = text.splitlines()
    assert "| prompt-cv | 72.0 | — | 72.0 (1/2 tasks) |" in lines
    assert "| list | 78.0 | 58.0 | 68.0 |" in lines
    assert "| prompt-cv | before | 0.090 | — | — |" in lines
    assert "| prompt-cv | served | 0.030 | — | — |" in lines
    targets = [line for line in lines if line.startswith("| **list**")]
    expected = "| **list** (auto default) | 68.0 | +18.0 yes | yes | 0.040 yes | 0.756 NO |"
    assert targets == [expected]
    assert not any(line.startswith("| prompt-cv | 72.0 |") and "yes" in line for line in lines)
    assert "Not judged, tasks missing: `prompt-cv` (1/2 tasks)." in lines
    costs = accuracy_table.cost_table([r for r in read_records(results) if r["seed"] == 1])
    assert any(line.startswith("| setfit | 2 | 100 | — |") for line in costs)
