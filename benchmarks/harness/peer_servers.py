"""Any peer's HTTP server in its own process, ready once a URL answers 200, stopped on exit.

`server.server` starts listserve with its benchmark settings; this starts the others (Infinity
from its own environment, the SetFit server) the same way: loopback only, log to a file,
bounded wait for readiness, terminate then kill.
"""

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",  # Infinity's anonymous usage statistics
    "INFINITY_ANONYMOUS_USAGE_STATS": "0",
}


@contextmanager
def http_server(
    command: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    ready_url: str,
    cwd: Path | None = None,
    ready_timeout_s: float = 600.0,
) -> Iterator[int]:
    """Run `command` and yield its pid once `ready_url` answers 200; a process that exits or
    stays unready past `ready_timeout_s` raises, naming its log."""
    import httpx

    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        list(command), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited ({process.returncode}); see {log_path}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in {ready_timeout_s:.0f} s; see {log_path}")
            time.sleep(0.5)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
