"""Ratios and targets from the serving records, as markdown.

    python -m benchmarks.serving_report [--run RUN_ID ...] [--precision-runs A,B,C] [--out FILE]

Reads results/serving.jsonl (one section per `--run`, default the newest run) and
results/adapter_apply.jsonl (its newest commit's records) and prints the throughput table, the
ratios a/b, a/c, a/d (a = mixed, b = unbatched, c = per_adapter, d = swap, same point of the same
run) and a check of each target from issue 6; `--out` writes it to a file instead. Nothing here
is measured: every figure comes from those records. RESULTS.md's serving section
(`python -m benchmarks.results_page`) is `section`: the newest full sweep, the newest
`adapter_apply` runs and the newest serving-precision runs over HTTP.
"""

import argparse
import statistics
from pathlib import Path

from benchmarks.harness.records import RESULTS_DIR, date_span, read_records

SERVING = RESULTS_DIR / "serving.jsonl"
ADAPTER_APPLY = RESULTS_DIR / "adapter_apply.jsonl"
BASELINES = {"b": "unbatched", "c": "per_adapter", "d": "swap"}
MODES = ("mixed", *BASELINES.values())
SWEEP_ADAPTERS = {1, 16, 128, 1024}
PRECISION_SETTING = "LISTSERVE_SERVING_PRECISION"


def point_key(record: dict) -> tuple:
    return (record["adapters"], record["traffic"], record["concurrency"], record["load"])


def by_point(records: list[dict]) -> dict[tuple, dict[str, dict]]:
    points: dict[tuple, dict[str, dict]] = {}
    for record in records:
        points.setdefault(point_key(record), {})[record["mode"]] = record
    return points


def ratio(points: dict, key: tuple, baseline: str) -> float | None:
    modes = points.get(key, {})
    a, other = modes.get("mixed"), modes.get(baseline)
    if not a or not other or not other.get("rows_per_s"):
        return None
    return a["rows_per_s"] / other["rows_per_s"]


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[ok]


def throughput_table(points: dict) -> list[str]:
    lines = [
        "| adapters | traffic | conc. | mixed rows/s | unbatched | per_adapter | swap "
        "| a/b | a/c | a/d | mixed p50 / p95 / p99 ms | hit rate | RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key in sorted(k for k in points if k[3] == "closed"):
        modes = points[key]
        mixed = modes.get("mixed", {})
        cells = [fmt(modes.get(m, {}).get("rows_per_s"), 1) for m in ("mixed", *BASELINES.values())]
        ratios = [fmt(ratio(points, key, m)) for m in BASELINES.values()]
        latency = " / ".join(fmt(mixed.get(f), 0) for f in ("p50_ms", "p95_ms", "p99_ms"))
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {' | '.join(cells)} | {' | '.join(ratios)} "
            f"| {latency} | {fmt(mixed.get('cache_hit_rate'))} | {fmt(mixed.get('rss_mb'), 0)} |"
        )
    return lines


def ratio_target(points, baseline, select, threshold) -> tuple[list[float], bool | None]:
    values = [ratio(points, key, baseline) for key in points if select(key)]
    values = [v for v in values if v is not None]
    return values, (min(values) >= threshold) if values else None


def summary(values: list[float]) -> str:
    if not values:
        return "no points"
    return f"min {min(values):.2f}, median {statistics.median(values):.2f}, max {max(values):.2f}"


def newest_apply_runs(records: list[dict]) -> dict[bool, list[dict]]:
    """Per kind (False: alone, True: `--contended`), the records of the newest commit that has
    that kind: the two are separate commands and may have run on different commits."""
    newest = {}
    for contended in (False, True):
        kind = [r for r in records if bool(r.get("contended")) == contended]
        if kind:
            newest[contended] = [r for r in kind if r["commit"] == kind[-1]["commit"]]
    return newest


def apply_target(
    records: list[dict], cpu_model: str | None = None
) -> tuple[list[str], bool | None]:
    """32 distinct adapters against one, per forward of the newest run alone on `cpu_model`
    (the sweep's CPU: the machine changes between sessions, and a sweep is judged with the
    forward measured where it ran), or of the newest run at all when none ran there. Runs that
    mark the forward the service serves (`served`) are judged on it; older runs on every
    forward."""
    same_cpu = [r for r in records if cpu_model and r.get("cpu_model") == cpu_model]
    latest = newest_apply_runs(same_cpu or records).get(False, [])
    judged = {r["apply_mode"] for r in latest if r.get("served")}
    lines, ok = [], True
    for mode in dict.fromkeys(r["apply_mode"] for r in latest if r["apply_mode"] != "none"):
        rows = {r["distinct_adapters"]: r for r in latest if r["apply_mode"] == mode}
        if 1 not in rows or 32 not in rows:
            continue
        cpu = rows[32]["rows_per_cpu_s"] / rows[1]["rows_per_cpu_s"]
        wall = rows[32]["rows_per_s"] / rows[1]["rows_per_s"]
        if not judged or mode in judged:
            ok = ok and cpu >= 0.85
        served = " (the service's forward)" if mode in judged else ""
        lines.append(
            f"{forward_name(mode)}{served}: 32 distinct / 1 adapter = {cpu:.2f} (CPU time), "
            f"{wall:.2f} (min wall)"
        )
    if not lines:
        return ["no adapter_apply run alone with 1 and 32 adapters"], None
    return lines, ok


def build(records: list[dict], apply_records: list[dict], run: str) -> str:
    points = by_point(records)
    first = records[0]
    closed = [k for k in points if k[3] == "closed"]
    ab, ab_ok = ratio_target(points, "unbatched", lambda k: k[3] == "closed" and k[2] == 64, 4.0)
    ac, ac_ok = ratio_target(
        points, "per_adapter", lambda k: k[3] == "closed" and k[0] >= 64 and k[2] == 64, 1.5
    )
    # With one adapter swapping never swaps: (d) runs what (a) runs, so a/d is 1 by design.
    ad, ad_ok = ratio_target(
        points, "swap", lambda k: k[3] == "closed" and k[2] == 64 and k[0] > 1, 2.0
    )
    ad_single, _ = ratio_target(
        points, "swap", lambda k: k[3] == "closed" and k[2] == 64 and k[0] == 1, 2.0
    )
    apply_lines, apply_ok = apply_target(apply_records, first.get("cpu_model"))

    tail_lines, tail_ok = [], None
    for record in (r for r in records if r["load"] == "open"):
        if not (record.get("p50_ms") and record.get("p99_ms")):
            continue
        spread = record["p99_ms"] / record["p50_ms"]
        if record["mode"] == "mixed":
            tail_ok = spread <= 3
        offered = (
            f", {record['offered_rps']} sent (send lag p99 {record['send_lag_p99_ms']} ms)"
            if record.get("offered_rps") is not None
            else ""
        )
        tail_lines.append(
            f"`{record['mode']}` at {record['rate_rps']} req/s{offered} ({record['adapters']} "
            f"adapters, {record['traffic']}): {record['rows_per_s']} rows/s, p50 "
            f"{record['p50_ms']:.0f} ms, p99 {record['p99_ms']:.0f} ms, p99/p50 = {spread:.2f}"
        )

    mixed = [r for r in records if r["mode"] == "mixed" and r["load"] == "closed"]
    most = max(k[0] for k in closed)
    budget_mb = first["cache_budget_mb"]
    rss_base, rss_top = rss_at(mixed, "rss_mb", 1), rss_at(mixed, "rss_mb", most)
    rss_ok = None if rss_base is None or rss_top is None else rss_top - rss_base <= budget_mb
    rss_growth = f", +{rss_top - rss_base:.1f} MB" if rss_ok is not None else ""
    beside = [
        {**r, "rss_beside_cache_mb": r["rss_mb"] - r["cache_bytes"] / 2**20}
        for r in mixed
        if "cache_bytes" in r
    ]
    spike_free = "medians of each point's samples, which a passing spike does not move"
    anonymous = (
        "anonymous memory alone (RSS minus resident pages of mapped files, which follow the "
        "page cache)"
    )
    rss_notes = (
        growth_note(mixed, "rss_median_mb", most, spike_free)
        + growth_note(mixed, "rss_anon_mb", most, anonymous)
        + growth_note(
            beside,
            "rss_beside_cache_mb",
            most,
            "beside the cache (peak RSS minus the cache's bytes)",
        )
    )
    # A point without loads in its measured phase only repeats older points' load times.
    loaded = [r for r in records if r.get("cache_loads") and r.get("cold_load_p99_ms")]
    cold = [r["cold_load_p99_ms"] for r in loaded]
    cold_cpu = [r["cold_load_cpu_p99_ms"] for r in loaded if r.get("cold_load_cpu_p99_ms")]
    waits = [r["cold_load_wait_p99_ms"] for r in loaded if r.get("cold_load_wait_p99_ms")]
    cold_ok = max(cold) <= 20 if cold else None

    lines = [
        f"## Serving speed (issue 6), run `{run}`",
        "",
        f"Records {date_span(records)}, server code `{first['commit'][:7]}`, backbone "
        f"`{first['backbone']}`, {first['cpus']} CPUs (shared machine"
        + (f", {first['cpu_model']}" if first.get("cpu_model") else "")
        + "). Real HTTP server (`listserve serve`, one "
        "process per mode, `LISTSERVE_BATCH_MODE`) and a separate load-generator process on "
        f"loopback; {first['rows_per_request']} text per request (sst-2 test sentences); "
        f"{first['warmup_s']:g} s warm-up + {first['duration_s']:g} s measured per point; "
        f"adapter cache budget {first['cache_budget_mb']:g} MB (one adapter = "
        f"{first['adapter_bytes'] / 2**20:.2f} MB); max batch {first['max_batch_rows']} rows, "
        f"max wait {first['max_wait_ms']:g} ms; torch threads "
        f"{first.get('torch_threads') or 'default'}."
        + (
            " Points whose adapters fit the cache requested each of them once before the "
            "warm-up (`prewarmed`)."
            if any(r.get("prewarmed") for r in records)
            else ""
        ),
        "",
        f"Commands: `python -m benchmarks.serving sweep {first.get('command_args', '')}`, then "
        f"`python -m benchmarks.serving_report --run {run}`.",
        "",
        "a = mixed-adapter batching, b = one forward per request, c = batches per adapter, "
        "d = adapter swapping (one active adapter slot, weights copied in per group).",
        "",
        *throughput_table(points),
        "",
        "### Targets",
        "",
        f"- a/b >= 4 at concurrency 64: {verdict(ab_ok)} ({summary(ab)}).",
        f"- a/c >= 1.5 with >= 64 distinct adapters (concurrency 64): {verdict(ac_ok)} "
        f"({summary(ac)}).",
        f"- a/d >= 2 (concurrency 64, more than one adapter): {verdict(ad_ok)} ({summary(ad)}; "
        f"with one adapter swapping never swaps and runs what mixed runs: {summary(ad_single)}).",
        f"- 32 rows over 32 adapters >= 0.85 of 32 rows on one adapter: {verdict(apply_ok)} "
        f"({'; '.join(apply_lines)}; `python -m benchmarks.micro.adapter_apply`).",
        f"- p99 <= 3x p50 at half of peak load (open loop, Poisson arrivals): {verdict(tail_ok)} "
        f"({'; '.join(tail_lines) or 'no open-loop points'}).",
        f"- {most} adapters add no more than the cache budget to RSS: "
        f"{verdict(rss_ok)} (mixed: peak RSS {fmt(rss_top, 0)} MB at {most} adapters vs "
        f"{fmt(rss_base, 0)} MB peak at 1 adapter{rss_growth}; budget {budget_mb:g} MB"
        f"{rss_notes}).",
        f"- cold adapter load p99 <= 20 ms: {verdict(cold_ok)} (over the {len(loaded)} points "
        "that loaded adapters while measured, p99 of the server's latest <= 1,024 loads, wall "
        f"time in its loader thread: {summary(cold)} ms; CPU time of that thread per load: "
        f"{summary(cold_cpu)} ms; as requests saw it, including the wait for a loader thread: "
        f"{summary(waits)} ms).",
        "",
    ]
    return "\n".join(lines)


def rss_at(mixed: list[dict], field: str, adapters: int) -> float | None:
    """The largest `field` (an RSS figure) over the mixed points with `adapters` adapters. At one
    adapter this is the baseline: those points already run the same batch sizes."""
    return max((r[field] for r in mixed if r["adapters"] == adapters and field in r), default=None)


def growth_note(mixed: list[dict], field: str, most: int, label: str) -> str:
    """`; label: X vs Y MB, +Z MB` for `field` at `most` adapters against one, or "" when the
    records predate that field."""
    base, top = rss_at(mixed, field, 1), rss_at(mixed, field, most)
    if base is None or top is None:
        return ""
    return f"; {label}: {top:.0f} vs {base:.0f} MB, {top - base:+.1f} MB"


def forward_name(mode: str) -> str:
    """`apply_mode` of an adapter_apply record as the table shows it (`scripted` alone is the
    scripted forward of the runs before it had a `group` computation: `gather`)."""
    if mode == "none":
        return "bare backbone"
    if mode == "scripted":
        return "scripted `gather`"
    forward, _, apply_mode = mode.rpartition("-")
    return f"{forward or 'eager'} `{apply_mode}`"


def apply_section(records: list[dict]) -> str:
    """The newest `adapter_apply` records: rows/s of one batch per forward and apply mode,
    alone and beside a busy Python thread (`--contended`), each kind from its newest commit."""
    newest = newest_apply_runs(records)
    if not newest:
        return ""
    latest = [record for kind in newest.values() for record in kind]
    first = latest[0]
    if len({kind[0]["commit"] for kind in newest.values()}) == 1:
        commits = f"`{first['commit'][:12]}`"
    else:
        commits = " and ".join(
            f"`{kind[0]['commit'][:12]}` ({'contended' if contended else 'alone'})"
            for contended, kind in newest.items()
        )
    lines = [
        f"### One batch of {first['rows']} rows per forward (commit {commits})",
        "",
        "`python -m benchmarks.micro.adapter_apply`, with and without `--contended` (a pure-Python "
        "thread running meanwhile, as a server's event loop does). Rows/s from the fastest "
        "batch; CPU ms is the median CPU time of the timing thread per batch; torch threads "
        f"{first['torch_threads']}; mean {first['mean_tokens']} tokens per row, longest "
        f"{first['max_tokens']}.",
        "",
        "| forward | distinct adapters | rows/s | CPU ms per batch | rows/s, contended |",
        "|---|---:|---:|---:|---:|",
    ]
    cells: dict[tuple, dict[bool, dict]] = {}
    for record in latest:
        key = (record["apply_mode"], record["distinct_adapters"])
        cells.setdefault(key, {})[bool(record.get("contended"))] = record
    for (mode, distinct), pair in cells.items():
        alone, contended = pair.get(False), pair.get(True)
        lines.append(
            f"| {forward_name(mode)} | {distinct} | {fmt(alone and alone['rows_per_s'], 1)} | "
            f"{fmt(alone and alone['cpu_ms_p50'], 1)} | "
            f"{fmt(contended and contended['rows_per_s'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def _machine_note(records: list[dict]) -> str:
    """On which code, and where the records say so (older ones predate `cpu_model`), the runs
    were measured."""
    if not records:
        return ""
    first = records[0]
    where = f"CPU: {first['cpu_model']}; " if first.get("cpu_model") else ""
    return f" {where}server code `{first['commit'][:7]}`."


def precision_section(records: list[dict], runs: list[str]) -> str:
    """One row per run of the same point with a different LISTSERVE_SERVING_PRECISION: what the
    serving twin does to throughput over HTTP, and to the mixed/unbatched ratio."""
    lines = [
        "### Serving precision over HTTP (runs " + ", ".join(f"`{run}`" for run in runs) + ")",
        "",
        "Same point (adapters, traffic, concurrency) in each run, one run per "
        "`--server-env LISTSERVE_SERVING_PRECISION=...`; the runs followed each other on the "
        "same machine. Accuracy per precision: the in-process serving-precision section."
        + _machine_note([r for r in records if r["run"] in runs]),
        "",
        "| precision | point | mixed rows/s | unbatched rows/s | a/b | mixed ×first run "
        "| mixed p50 / p99 ms | RSS MB |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    reference = None
    for run in runs:
        modes = {r["mode"]: r for r in records if r["run"] == run and r["load"] == "closed"}
        mixed, unbatched = modes.get("mixed"), modes.get("unbatched")
        if mixed is None:
            continue
        reference = reference or mixed["rows_per_s"]
        env = dict(pair.split("=", 1) for pair in mixed.get("server_env") or [])
        precision = env.get(PRECISION_SETTING, "fp32")
        a_b = fmt(mixed["rows_per_s"] / unbatched["rows_per_s"]) if unbatched else "–"
        lines.append(
            f"| {precision} | {mixed['adapters']} adapters, {mixed['traffic']}, "
            f"c={mixed['concurrency']} | {mixed['rows_per_s']:.1f} | "
            f"{fmt(unbatched['rows_per_s'], 1) if unbatched else '–'} | {a_b} | "
            f"{mixed['rows_per_s'] / reference:.2f} | {mixed['p50_ms']:.0f} / "
            f"{mixed['p99_ms']:.0f} | {mixed['rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def run_order(records: list[dict]) -> list[str]:
    """Run ids in the order their first records were written."""
    return list(dict.fromkeys(record["run"] for record in records))


def is_full_sweep(records: list[dict]) -> bool:
    """A run of the whole default sweep: every mode at 1, 16, 128 and 1,024 adapters, and the
    half-load point (the A/B runs of one setting measure a few points or modes)."""
    return (
        {r["mode"] for r in records} >= set(MODES)
        and {r["adapters"] for r in records} >= SWEEP_ADAPTERS
        and any(r["load"] == "open" for r in records)
    )


def latest_full_sweep(records: list[dict]) -> str | None:
    """The newest full sweep's run id."""
    full = [
        run for run in run_order(records) if is_full_sweep([r for r in records if r["run"] == run])
    ]
    return full[-1] if full else None


def latest_precision_runs(records: list[dict]) -> list[str]:
    """The newest run of each serving precision among the one-point runs that set it
    (`--server-env LISTSERVE_SERVING_PRECISION=...`), fp32 first: the base of the table."""
    newest: dict[str, str] = {}
    for run in run_order(records):
        of_run = [r for r in records if r["run"] == run]
        points = {point_key(r) for r in of_run}
        env = dict(pair.split("=", 1) for pair in of_run[0].get("server_env") or [])
        if len(points) == 1 and PRECISION_SETTING in env:
            newest[env[PRECISION_SETTING]] = run
    return sorted(newest.values(), key=lambda run: run != newest.get("fp32"))


def section(records: list[dict], apply_records: list[dict]) -> str:
    """RESULTS.md's serving section: the newest full sweep with its targets, the newest
    one-batch `adapter_apply` table, and the newest precision runs over HTTP."""
    run = latest_full_sweep(records)
    parts = [build([r for r in records if r["run"] == run], apply_records, run)] if run else []
    parts.append(apply_section(apply_records))
    precision_runs = latest_precision_runs(records)
    if precision_runs:
        parts.append(precision_section(records, precision_runs))
    return "\n".join(part for part in parts if part)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, default=SERVING)
    parser.add_argument("--apply-records", type=Path, default=ADAPTER_APPLY)
    parser.add_argument(
        "--run", action="append", help="run id; repeat for several sections (default: newest)"
    )
    parser.add_argument(
        "--precision-runs",
        action="append",
        help="comma list of runs that differ only in LISTSERVE_SERVING_PRECISION (first = base);"
        " repeat for one table per group",
    )
    parser.add_argument("--out", type=Path, default=None, help="write here (default: print)")
    args = parser.parse_args(argv)
    records = read_records(args.records)
    if not records:
        raise SystemExit(f"no records in {args.records}")
    runs = args.run or [records[-1]["run"]]
    apply_records = read_records(args.apply_records)
    sections = [build([r for r in records if r["run"] == run], apply_records, run) for run in runs]
    sections.append(apply_section(apply_records))
    for group in args.precision_runs or []:
        sections.append(precision_section(records, group.split(",")))
    text = "\n".join(sections)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
