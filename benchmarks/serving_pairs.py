"""Paired serving runs: the same sweep points on two versions of the code, interleaved.

A change that should not move serving speed (a refactor) is checked by running the serving
sweep on the code before and after it, alternating the two on the same machine, and comparing
each point's mixed rows/s and rows per server CPU second. Records: one serving-sweep record
each, tagged with `pair` (the comparison), `side` (`before` or `after`), `code_commit`,
`harness_commit` and `order`, in `benchmarks/results/serving_pairs.jsonl`.

    python -m benchmarks.serving_pairs     # prints the tables of every recorded pair

The two sides count as equal within noise at a point when the ranges of their runs overlap:
on the shared 2-core machine one side's runs alone spread by 10-40 %.
"""

import argparse
import statistics
from collections.abc import Sequence

from benchmarks.harness.records import RESULTS_DIR, read_records

PAIRS_RESULTS = RESULTS_DIR / "serving_pairs.jsonl"
SIDES = ("before", "after")
METRICS = (("rows_per_s", "mixed rows/s"), ("rows_per_server_cpu_s", "rows per server CPU s"))


def _cell(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.1f} ({min(values):.0f}-{max(values):.0f}, n={len(values)})"


def _overlap(before: Sequence[float], after: Sequence[float]) -> bool:
    return max(min(before), min(after)) <= min(max(before), max(after))


def pair_table(records: list[dict]) -> str:
    """One pair's table: per point and metric, each side's mean and range, and their ratio."""
    points: dict[tuple, dict[str, list[dict]]] = {}
    for record in sorted(records, key=lambda r: r["order"]):
        point = (record["adapters"], record["traffic"], record["concurrency"])
        points.setdefault(point, {side: [] for side in SIDES})[record["side"]].append(record)
    lines = [
        "| adapters | traffic | conc. | metric | before | after | after / before | within noise |",
        "|---:|---|---:|---|---|---|---:|---|",
    ]
    for (adapters, traffic, concurrency), sides in sorted(points.items()):
        if not all(sides.values()):
            continue
        for field, label in METRICS:
            before = [r[field] for r in sides["before"]]
            after = [r[field] for r in sides["after"]]
            ratio = statistics.mean(after) / statistics.mean(before)
            verdict = "yes" if _overlap(before, after) else "**no**"
            lines.append(
                f"| {adapters} | {traffic} | {concurrency} | {label} | {_cell(before)} | "
                f"{_cell(after)} | {ratio:.2f} | {verdict} |"
            )
    return "\n".join(lines)


def render(records: list[dict]) -> str:
    """The RESULTS.md section: every recorded pair, newest first."""
    pairs: dict[str, list[dict]] = {}
    for record in records:
        pairs.setdefault(record["pair"], []).append(record)
    parts = ["## Paired serving runs: the code before and after a change, interleaved\n"]
    for name, group in sorted(pairs.items(), key=lambda item: max(r["date"] for r in item[1])):
        first = group[0]
        commits = {side: {r["code_commit"] for r in group if r["side"] == side} for side in SIDES}
        harnesses = sorted({r["harness_commit"] for r in group})
        parts.append(
            f"### `{name}`: code `{', '.join(sorted(commits['before']))}` against "
            f"`{', '.join(sorted(commits['after']))}`\n\n"
            f"{len(group)} records, {first['date'][:10]}, {first.get('cpu_model', '?')}, "
            f"{first.get('cpus', '?')} CPUs (shared), serving precision "
            f"{first.get('serving_precision', '?')}; load-generator harness of commit "
            f"{', '.join(f'`{h}`' for h in harnesses)}, sides alternated. Command per run: "
            f"`{first['command']}` (the `--run-id`, `--workdir` and `--out` differ).\n\n"
            f"{pair_table(group)}\n"
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving_pairs")
    parser.parse_args(argv)
    print(render(read_records(PAIRS_RESULTS)))


if __name__ == "__main__":
    main()
