"""The paired-runs table compares each point's two sides and says when their runs' ranges
overlap."""

from benchmarks.serving_pairs import pair_table, render


def run(side: str, order: int, rows_per_s: float, cpu: float, adapters: int = 128) -> dict:
    return {
        "pair": "refactor",
        "side": side,
        "order": order,
        "code_commit": "aaa" if side == "before" else "bbb",
        "harness_commit": "aaa",
        "date": "2026-12-07T00:00:00+00:00",
        "command": "python -m benchmarks.serving sweep",
        "adapters": adapters,
        "traffic": "uniform",
        "concurrency": 64,
        "rows_per_s": rows_per_s,
        "rows_per_server_cpu_s": cpu,
    }


def test_overlapping_runs_are_within_noise_and_the_ratio_is_of_the_means() -> None:
    table = pair_table([run("before", 1, 100, 200), run("after", 2, 110, 190)])
    assert "| 128 | uniform | 64 | mixed rows/s | 100.0 (100-100, n=1) | 110.0" in table
    assert "| 1.10 | **no** |" in table
    table = pair_table(
        [run("before", 1, 100, 200), run("after", 2, 110, 190), run("before", 3, 120, 180)]
    )
    assert "| 110.0 (100-120, n=2) | 110.0 (110-110, n=1) | 1.00 | yes |" in table
    assert "| 190.0 (180-200, n=2) | 190.0 (190-190, n=1) | 1.00 | yes |" in table


def test_a_point_with_one_side_only_is_left_out() -> None:
    table = pair_table([run("before", 1, 100, 200), run("after", 2, 100, 200, adapters=1)])
    assert table.count("\n") == 1  # the header rows only


def test_the_section_names_both_commits() -> None:
    section = render([run("before", 1, 100, 200), run("after", 2, 100, 200)])
    assert "### `refactor`: code `aaa` against `bbb`" in section
