"""The serving speed-up benchmark end to end on a tiny backbone: records, resume, table."""

from benchmarks.harness.records import read_records
from benchmarks.serving_precision import VARIANTS, main
from tests.tiny_models import build_tiny_bert


def test_every_variant_is_scored_against_fp32_and_a_rerun_skips(
    tiny_data, tmp_path, capsys
) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "precision.jsonl"
    argv = [
        "--data-dir",
        str(tiny_data),
        "--backbone",
        str(backbone),
        "--tasks",
        "sst-2",
        "--k",
        "6",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--set",
        "teacher_steps=3",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    records = read_records(out)
    assert [r["variant"] for r in records] == list(VARIANTS)
    by_variant = {r["variant"]: r for r in records}
    assert by_variant["fp32"]["agreement_with_fp32"] == 1.0
    assert by_variant["fp32"]["speedup_vs_fp32"] == 1.0
    for record in records:
        assert record["n_test"] == 20 and 0 <= record["accuracy"] <= 1
        assert record["overrides"] == {"teacher_steps": 3} and record["commit"]
        assert record["rows_per_s"] > 0
    capsys.readouterr()
    assert main(argv) == 0
    assert len(read_records(out)) == len(VARIANTS)
    table = capsys.readouterr().out
    assert "skip sst-2 (already recorded)" in table
    for variant in VARIANTS:
        assert f"| {variant} |" in table
    assert not out.with_suffix(".md").exists()  # the table lives in RESULTS.md only


def test_chosen_variants_are_added_beside_the_recorded_reference(
    tiny_data, tmp_path, capsys
) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "precision.jsonl"
    argv = ["--data-dir", str(tiny_data), "--backbone", str(backbone), "--tasks", "sst-2"]
    argv += ["--k", "6", "--threads", "1", "--rounds", "1", "--set", "teacher_steps=3"]
    argv += ["--out", str(out)]
    assert main([*argv, "--variants", "bf16"]) == 0
    assert [r["variant"] for r in read_records(out)] == ["fp32", "bf16"]  # no reference yet
    assert main([*argv, "--variants", "bf16+scripted"]) == 0
    assert [r["variant"] for r in read_records(out)] == ["fp32", "bf16", "bf16+scripted"]
    capsys.readouterr()
    assert main([*argv, "--variants", "bf16,bf16+scripted"]) == 0  # both recorded: skipped
    assert len(read_records(out)) == 3
    assert "| bf16+scripted |" in capsys.readouterr().out


def test_rerun_measures_recorded_tasks_again_and_the_table_shows_the_newest(
    tiny_data, tmp_path, capsys
) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "precision.jsonl"
    argv = ["--data-dir", str(tiny_data), "--backbone", str(backbone), "--tasks", "sst-2"]
    argv += ["--k", "6", "--threads", "1", "--rounds", "1", "--set", "teacher_steps=3"]
    argv += ["--out", str(out), "--variants", "bf16"]
    assert main(argv) == 0
    assert main([*argv, "--rerun"]) == 0
    records = read_records(out)
    assert [r["variant"] for r in records] == ["fp32", "bf16", "fp32", "bf16"]
    assert "--rerun" in records[-1]["command"] and "--rerun" not in records[0]["command"]
    capsys.readouterr()
    assert main([*argv, "--table"]) == 0
    assert len(read_records(out)) == 4  # --table measures nothing
    table = capsys.readouterr().out
    commands = [line.strip() for line in table.splitlines() if line.startswith("    python")]
    assert commands == [records[-1]["command"]]  # only the newest records are shown
