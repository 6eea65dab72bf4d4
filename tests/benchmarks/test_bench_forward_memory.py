"""The forward-memory benchmark end to end on a tiny backbone: one record per variant."""

import pytest

from benchmarks.harness.records import read_records
from benchmarks.micro.forward_memory import VARIANTS, main
from tests.tiny_models import build_tiny_bert


def test_each_variant_runs_in_its_own_process_and_records_rss(tmp_path) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "memory.jsonl"
    argv = ["--backbone", str(backbone), "--forwards", "4", "--every", "2"]
    main([*argv, "--allocator", "system", "--out", str(out)])
    records = read_records(out)
    assert [r["variant"] for r in records] == list(VARIANTS)
    for record in records:
        assert record["allocator"] == "system" and record["forwards"] == 4
        assert len(record["rss_samples_mb"]) == 3  # before, after 2 and after 4 forwards
        assert record["rss_start_mb"] > 0
        assert record["rss_growth_mb"] == round(record["rss_end_mb"] - record["rss_start_mb"], 1)
        assert record["commit"] and "--forwards 4" in record["command"]


def test_an_unknown_variant_is_refused_by_name_before_any_run(tmp_path, capsys) -> None:
    out = tmp_path / "memory.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main(["--variants", "bf16,fp8", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "unknown ['fp8']" in capsys.readouterr().err
    assert not out.exists()
