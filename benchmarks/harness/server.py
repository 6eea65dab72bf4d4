"""`listserve serve` in its own process, configured for a benchmark, and its CPU time."""

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ADMIN_TOKEN = "serving-benchmark-admin"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(
    workdir: Path, manifest: dict, mode: str, args: argparse.Namespace
) -> Iterator[tuple[str, int]]:
    """`listserve serve` on the seeded `workdir` in its own process with this batching mode and
    the batching, cache, thread and `--server-env` settings of `args`; yields (url, pid) once
    `/ready` answers, and stops the process on the way out."""
    import httpx

    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "LISTSERVE_BACKBONE": manifest["backbone_path"],
            "LISTSERVE_DEVICE": "cpu",
            "LISTSERVE_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
            "LISTSERVE_STORE": str(workdir / "adapters"),
            "LISTSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
            "LISTSERVE_BATCH_MODE": mode,
            "LISTSERVE_ADAPTER_CACHE_BYTES": str(int(args.cache_mb * 2**20)),
            "LISTSERVE_MAX_BATCH_ROWS": str(args.max_batch_rows),
            "LISTSERVE_MAX_WAIT_MS": str(args.max_wait_ms),
            "LISTSERVE_MAX_WAIT_FOR_LOADS_MS": str(args.max_wait_for_loads_ms),
            "LISTSERVE_PREDICT_RATE_PER_SECOND": "1000000",
            "LISTSERVE_PREDICT_BURST": "1000000",
            "LISTSERVE_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    env.update(pair.split("=", 1) for pair in getattr(args, "server_env", None) or [])
    log = open(workdir / f"server-{mode}.log", "w", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited ({process.returncode}); see {log.name}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 180 s; see {log.name}")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of the server process (all threads). On a shared machine wall-clock
    throughput depends on the CPU share the server got; rows per CPU-second does not."""
    if not pid:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system
