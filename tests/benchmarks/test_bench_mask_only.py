"""The mask-only benchmark end to end on a tiny backbone: both variants per batch size."""

from benchmarks.mask_only import VARIANTS, main
from benchmarks.records import read_records
from tests.tiny_models import build_tiny_bert


def test_both_variants_are_timed_for_each_batch_size(tmp_path) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "mask_only.jsonl"
    main(["--backbone", str(backbone), "--rows", "1,4", "--repeats", "2", "--out", str(out)])
    records = read_records(out)
    assert [(r["rows"], r["variant"]) for r in records] == [
        (rows, variant) for rows in (1, 4) for variant in VARIANTS
    ]
    for record in records:
        assert record["cpu_ms_p50"] > 0 and record["repeats"] == 2
        assert record["commit"] and "--rows 1,4" in record["command"]
    assert {r["cpu_vs_all"] for r in records if r["variant"] == "all-tokens"} == {1.0}
