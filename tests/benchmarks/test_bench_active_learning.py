"""The active-learning benchmark end to end on the tiny RoBERTa: three arms per (task, seed),
the picks kept in the base record, a rerun that skips what is recorded, and the table."""

from benchmarks import active_learning
from benchmarks.harness.records import read_records
from tests.benchmarks.conftest import TINY_STEPS


def test_three_arms_a_resumable_run_and_the_table(tiny_data, tiny_roberta_path, tmp_path):
    out = tmp_path / "active_learning.jsonl"
    argv = [
        "--data-dir",
        str(tiny_data),
        "--backbone",
        str(tiny_roberta_path),
        "--tasks",
        "sst-2",
        "--seeds",
        "1",
        "--k",
        "6",
        "--add",
        "4",
        "--pool-cap",
        "30",
        "--out",
        str(out),
        *TINY_STEPS,
    ]
    assert active_learning.main(argv) == 0
    records = read_records(out)
    assert [r["arm"] for r in records] == ["base", "suggested", "random"]
    base, suggested, chosen = records
    assert base["pool"] == 30 and len(set(base["suggested_indices"])) == 4
    assert len(set(base["random_indices"])) == 4
    assert suggested["n_train"] == chosen["n_train"] == 10 and base["n_train"] == 6
    assert suggested["gain"] == suggested["accuracy"] - base["accuracy"]
    assert all(r["overrides"]["bottleneck"] == 4 and r["threads"] == 1 for r in records)

    out.write_text("".join(line + "\n" for line in out.read_text().splitlines()[:2]))
    assert active_learning.main(argv) == 0  # the random arm only, from the base's picks
    assert [r["arm"] for r in read_records(out)] == ["base", "suggested", "random"]
    assert active_learning.main(argv) == 0
    assert len(read_records(out)) == 3

    table = active_learning.render(read_records(out))
    assert "| sst-2 | 1 |" in table and "Measured so far: 1 of the 21" in table
