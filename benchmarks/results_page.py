"""Assemble benchmarks/RESULTS.md from the generated sections, so no figure is typed by hand.

    python -m benchmarks.results_page

Each section is built by its own command from its records (`accuracy_table`, `experiments_table`,
`serving_report`, `serving_precision --table`); the `fast` budget section is rendered here from
its records. Rebuild the sections first, then run this.
"""

import argparse
from pathlib import Path

from benchmarks.fast_budget import FAST_BUDGET_RESULTS, LIMIT_S
from benchmarks.records import RESULTS_DIR, read_records

RESULTS_PAGE = RESULTS_DIR.parent / "RESULTS.md"
SECTIONS = (
    "accuracy.md",
    "accuracy_auto.md",
    "experiments.md",
    "accuracy.findings.md",
    "serving.md",
    "serving_precision.md",
)
INTRO = """# Benchmark results

Every figure quoted in the README and the docs comes from this page. Each section names the
command that produced its records and when; the page itself is rebuilt with
`python -m benchmarks.results_page` after the section commands (`python -m
benchmarks.accuracy_table`, the same with `--budget auto --planned-seeds 1,2,3 --out
benchmarks/results/accuracy_auto.md`, `python -m benchmarks.experiments_table`, `python -m
benchmarks.serving_report`, `python -m benchmarks.serving_precision --table`). Protocols:
[README.md](README.md). The machine is a shared 2-core CPU without a GPU; speed is reported as
ratios within one run, and CPU seconds beside wall time.
"""


def fast_budget_section(records: list[dict]) -> str:
    """One row per measurement of the 10-minute limit on a `fast` LiST job (issue 2)."""
    lines = [
        "## Training time: the `fast` budget (30 labels + 2,000 unlabelled texts, LiST)",
        "",
        f"Command: `python -m benchmarks.fast_budget` (limit {LIMIT_S:.0f} s of training wall "
        "time on this 2-core CPU). Records: `benchmarks/results/fast_budget.jsonl`.",
        "",
        "| date (UTC) | backbone | torch threads | training wall s | training CPU s | "
        "load avg before, after | within limit | test accuracy (sst-2) |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for record in records:
        within = "yes" if record["wall_s"] <= LIMIT_S else "no"
        load = ", ".join(f"{value:.1f}" for value in record.get("load_avg", []))
        lines.append(
            f"| {record['date'][:16].replace('T', ' ')} | {record['backbone']} "
            f"| {record['threads']} | {record['wall_s']:.0f} | {record.get('cpu_s', 0):.0f} "
            f"| {load} | {within} | {100 * record['accuracy']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def render(results_dir: Path, fast_budget: Path) -> str:
    parts = [INTRO, fast_budget_section(read_records(fast_budget))]
    for name in SECTIONS:
        section = results_dir / name
        if section.is_file():
            parts.append(section.read_text(encoding="utf-8").rstrip() + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.results_page")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--fast-budget", type=Path, default=FAST_BUDGET_RESULTS)
    parser.add_argument("--out", type=Path, default=RESULTS_PAGE)
    args = parser.parse_args(argv)
    args.out.write_text(render(args.results_dir, args.fast_budget), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
