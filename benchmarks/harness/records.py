"""The results files: one JSON record a line, appended and flushed as soon as it is measured.

A long run does not fit in one sitting, so each record is forced to disk when its measurement
ends, and a line cut short by a killed process is skipped when read. The accuracy benchmark
also keys its jobs on their setting (`record_key`), so a rerun skips what is recorded.
Provenance helpers (commit, dirty engine, CPU model, date) stamp each record.
"""

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
ACCURACY_RESULTS = RESULTS_DIR / "accuracy.jsonl"

# What makes two accuracy jobs "the same job": a rerun with these equal skips it.
KEY_FIELDS = ("task", "method", "seed", "k", "unlabeled_cap", "backbone", "budget", "overrides")


def record_key(record: dict) -> str:
    fields = [record.get(name) for name in KEY_FIELDS]
    tuner = record.get("tuner", "adapter")
    if tuner != "adapter":  # another tuner's job is another job; adapter keys stay as they were
        fields.append(tuner)
    if "speedups" in record:  # so is a job with only some training speed-ups (not all)
        fields.append(record["speedups"])
    return json.dumps(fields, sort_keys=True)


def read_records(path: Path) -> list[dict]:
    """All complete records in `path` (none if it does not exist yet)."""
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"{path}:{number}: skipping an incomplete record", file=sys.stderr)
    return records


def unique_records(records: list[dict]) -> list[dict]:
    """The first record of each job key: a job run twice by two processes counts once."""
    seen: set[str] = set()
    unique = []
    for record in records:
        key = record_key(record)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def finished_keys(path: Path) -> set[str]:
    return {record_key(record) for record in read_records(path)}


def append_record(path: Path, record: dict) -> None:
    """Append one line and force it to disk, so a crash later never loses a finished job."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def utc_now() -> str:
    """The `date` field of a record: UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def date_span(records: list[dict]) -> str:
    """When the records were taken, for a generated section: `dated A` or `dated A to B` (days,
    UTC), or `undated` where they predate the `date` field."""
    days = sorted(record["date"][:10] for record in records if record.get("date"))
    if not days:
        return "undated"
    return f"dated {days[0]}" + ("" if days[0] == days[-1] else f" to {days[-1]}")


def display_path(path: Path) -> Path:
    """Repo-relative when possible, so generated text does not depend on the checkout."""
    resolved, root = path.resolve(), REPO_ROOT.resolve()
    return resolved.relative_to(root) if resolved.is_relative_to(root) else path


def load_avg() -> float:
    """The 1-minute load average, rounded: records carry it because the machine is shared."""
    return round(os.getloadavg()[0], 2)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and whether it computes bf16 natively: the shared benchmark machine
    changes between sessions, and `LISTSERVE_SERVING_PRECISION=auto` serves bf16 only with it."""
    try:
        info = cpuinfo.read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    fields: dict[str, str] = {}
    for line in info.splitlines():  # one block per core; the first says it
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name, flags = fields.get("model name", "unknown"), fields.get("flags", "").split()
    return f"{name} ({'avx512_bf16' if 'avx512_bf16' in flags else 'no avx512_bf16'})"


def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD of the listserve checkout the numbers came from ('unknown' outside git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def engine_dirty(repo: Path = REPO_ROOT) -> bool:
    """True when list_core/ has uncommitted changes, i.e. the commit alone does not pin it."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--", "list_core"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(result.stdout.strip())
