import random

from benchmarks.harness.records import read_records
from benchmarks.micro.batching_gain import draw_rows, main
from tests.tiny_models import build_tiny_bert


def test_each_batch_size_is_timed_batched_and_row_by_row(tmp_path) -> None:
    backbone = build_tiny_bert(tmp_path / "bert")
    out = tmp_path / "batching_gain.jsonl"
    main(["--backbone", str(backbone), "--rows", "1,3", "--draws", "2", "--out", str(out)])
    records = read_records(out)
    assert [r["rows"] for r in records] == [1, 3]
    for record in records:
        assert record["batched_cpu_ms_p50"] > 0 and record["one_by_one_cpu_ms_p50"] > 0
        assert record["gain_per_draw_min"] <= record["gain"] <= record["gain_per_draw_max"]
        assert record["mean_tokens"] > 2 and record["draws"] == 2
        assert record["commit"] and "--rows 1,3" in record["command"] and record["date"]
        assert record["apply_mode"] == "group" and record["torch_threads"] == 1


def test_a_draw_gives_each_row_its_own_adapter_shortest_first() -> None:
    models = [object() for _ in range(5)]
    texts = [f"sentence {'x' * n}" for n in range(20)]
    rows = draw_rows(models, texts, 4, random.Random(3))
    assert [row.model for row in rows] == models[:4]
    lengths = [len(row.text) for row in rows]
    assert lengths == sorted(lengths) and len(set(row.text for row in rows)) == 4
