"""The MLM-heads benchmark end to end at tiny sizes: both ways, alone and contended."""

from benchmarks.mlm_heads import WAYS, main
from benchmarks.records import read_records


def test_both_ways_are_timed_alone_and_contended_per_task_count(tmp_path) -> None:
    out = tmp_path / "mlm_heads.jsonl"
    argv = ["--rows", "6", "--hidden", "16", "--vocab", "20", "--distinct", "1,3"]
    main([*argv, "--repeats", "2", "--warmup", "1", "--out", str(out)])
    records = read_records(out)
    settings = {(r["contended"], r["tasks"], r["way"]) for r in records}
    assert settings == {(c, t, w) for c in (False, True) for t in (1, 3) for w in WAYS}
    for record in records:
        assert record["wall_ms_p50"] > 0 and record["repeats"] == 2
        assert record["switch_interval_ms"] == 1.0 and "--distinct 1,3" in record["command"]
