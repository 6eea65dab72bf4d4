"""The peers benchmark's three targets, evaluated on one run's records.

- throughput: listserve's rows/s at concurrency 64 >= 1.2x Infinity's best engine there;
- memory: listserve's RSS per additional task <= 1/50 of SetFit's;
- efficiency: listserve's HTTP peak >= 0.9 of the in-process ceiling of the same forward.

listserve is judged at its largest task count whose adapters all fit the adapter cache (the
records mark it `prewarmed`: 32 of the default 1, 32, 1,024): every row there runs through its
own adapter and head, and memory per task is what each resident task costs (past the cache
budget the cache evicts, so RSS stops growing by design). RSS per additional task compares the
median RSS of the concurrency-64 points (the same activation high-water) at the smallest and
the judged task counts.
"""

from dataclasses import dataclass

THROUGHPUT_RATIO = 1.2
MEMORY_RATIO = 50
EFFICIENCY_RATIO = 0.9
CONCURRENCY = 64


@dataclass(frozen=True)
class Verdict:
    name: str
    met: bool | None  # None: not measured
    text: str


def points(records: list[dict], peer: str) -> list[dict]:
    return [r for r in records if r.get("kind") == "point" and r["peer"] == peer]


def point(records: list[dict], peer: str, tasks: int | None, concurrency: int) -> dict | None:
    found = [
        r
        for r in points(records, peer)
        if r.get("tasks") == tasks and r["concurrency"] == concurrency and r.get("rows_per_s")
    ]
    return found[-1] if found else None


def judged_tasks(records: list[dict]) -> int | None:
    """listserve's largest task count whose adapters all fit its cache."""
    counts = [r["tasks"] for r in points(records, "listserve") if r.get("prewarmed")]
    return max(counts) if counts else None


def rss_per_task(records: list[dict], peer: str, high: int | None) -> tuple[float, int, int] | None:
    """(MB per additional task, low, high) from the concurrency-64 points' median RSS."""
    counts = sorted({r["tasks"] for r in points(records, peer)})
    if not counts or high is None or high == counts[0]:
        return None
    low_point = point(records, peer, counts[0], CONCURRENCY)
    high_point = point(records, peer, high, CONCURRENCY)
    if not low_point or not high_point:
        return None
    delta = high_point["rss_median_mb"] - low_point["rss_median_mb"]
    return round(delta / (high - counts[0]), 3), counts[0], high


def infinity_best(records: list[dict]) -> dict | None:
    engines = [
        found
        for peer in sorted({r["peer"] for r in records if r.get("kind") == "point"})
        if peer.startswith("infinity")
        and (found := point(records, peer, None, CONCURRENCY)) is not None
    ]
    return max(engines, key=lambda r: r["rows_per_s"]) if engines else None


def throughput(records: list[dict]) -> Verdict:
    name = f"listserve rows/s at concurrency {CONCURRENCY} >= {THROUGHPUT_RATIO}x Infinity's best"
    best, tasks = infinity_best(records), judged_tasks(records)
    ours = point(records, "listserve", tasks, CONCURRENCY) if tasks else None
    if not best or not ours:
        return Verdict(name, None, "no Infinity or no listserve point")
    ratio = ours["rows_per_s"] / best["rows_per_s"]
    others = [
        f"{r['tasks']} tasks: {r['rows_per_s'] / best['rows_per_s']:.2f}x"
        for r in points(records, "listserve")
        if r["concurrency"] == CONCURRENCY and r["tasks"] != tasks and r.get("rows_per_s")
    ]
    text = (
        f"{ours['rows_per_s']} rows/s over {tasks} tasks vs {best['peer']} {best['rows_per_s']}"
        f" = {ratio:.2f}x" + (f" (at {', '.join(others)})" if others else "")
    )
    if ours.get("rows_per_server_cpu_s") and best.get("rows_per_server_cpu_s"):
        text += (
            f"; per server CPU-second, which the machine's other load does not move: "
            f"{ours['rows_per_server_cpu_s']} vs {best['rows_per_server_cpu_s']} = "
            f"{ours['rows_per_server_cpu_s'] / best['rows_per_server_cpu_s']:.2f}x"
        )
    return Verdict(name, ratio >= THROUGHPUT_RATIO, text)


def memory(records: list[dict]) -> Verdict:
    name = f"listserve RSS per additional task <= 1/{MEMORY_RATIO} of SetFit's"
    ours = rss_per_task(records, "listserve", judged_tasks(records))
    setfit_counts = [r["tasks"] for r in points(records, "setfit")]
    theirs = rss_per_task(records, "setfit", max(setfit_counts) if setfit_counts else None)
    if not ours or not theirs:
        return Verdict(name, None, "needs two task counts of each at c=64")
    if theirs[0] <= 0:
        return Verdict(name, None, f"SetFit's RSS did not grow with tasks ({theirs[0]} MB)")
    text = (
        f"listserve {ours[0]} MB/task ({ours[1]} -> {ours[2]} tasks), SetFit {theirs[0]} MB/task"
        f" ({theirs[1]} -> {theirs[2]}): 1/{theirs[0] / max(ours[0], 1e-9):.0f}"
    )
    return Verdict(name, ours[0] * MEMORY_RATIO <= theirs[0], text)


def efficiency(records: list[dict]) -> Verdict:
    name = f"listserve HTTP peak >= {EFFICIENCY_RATIO} of the in-process ceiling"
    tasks = judged_tasks(records)
    served = [r for r in points(records, "listserve") if r["tasks"] == tasks and r["rows_per_s"]]
    ceilings = [r for r in records if r.get("kind") == "ceiling"]
    if not served or not ceilings:
        return Verdict(name, None, "no listserve point or no ceiling record")
    peak = max(served, key=lambda r: r["rows_per_s"])
    best = max(ceilings, key=lambda r: r["rows_per_s"])
    ratio = peak["rows_per_s"] / best["rows_per_s"]
    text = (
        f"peak {peak['rows_per_s']} rows/s ({tasks} tasks, c={peak['concurrency']}) vs "
        f"{best['rows_per_s']} in process ({best['batch_rows']}-row batches) = {ratio:.2f}"
    )
    per_cpu = [r["rows_per_cpu_s"] for r in ceilings if r.get("rows_per_cpu_s")]
    if per_cpu and peak.get("rows_per_server_cpu_s"):
        text += (
            f"; per CPU-second, which the machine's other load does not move: "
            f"{peak['rows_per_server_cpu_s']} served vs {max(per_cpu)} in process = "
            f"{peak['rows_per_server_cpu_s'] / max(per_cpu):.2f}"
        )
    return Verdict(name, ratio >= EFFICIENCY_RATIO, text)


def verdicts(records: list[dict]) -> list[Verdict]:
    return [throughput(records), memory(records), efficiency(records)]
