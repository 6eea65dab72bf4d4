"""Every shell and Python snippet of the README runs as written, on the tiny model.

Each ```bash and ```python block runs, in README order, in a scratch folder holding the
repository's `tests/data` (the snippets' example files), with the venv's `listserve` on PATH,
no network (`HF_HUB_OFFLINE`) and `LISTSERVE_BACKBONE` naming the tiny RoBERTa, which is the
setting the snippets leave to the reader's environment. A block marked
`<!-- readme-test: with server -->` on the line before it runs against a real `listserve
serve` started as the README says (`LISTSERVE_ADMIN_TOKEN=change-me`), on a free port it finds
in `LISTSERVE_PORT`. `<!-- readme-test: skip (why) -->` leaves a block out and must say why;
any other block runs, so a new snippet is tested unless someone decides otherwise.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port
from tests.service.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUNNABLE = ("bash", "python")
MARKER = re.compile(r"^<!-- readme-test: (skip|with server)(?: \((.*)\))? -->$")
BLOCK_SECONDS = 600


@dataclass(frozen=True)
class Snippet:
    language: str
    code: str
    line: int
    marker: str | None
    reason: str | None


def snippets(text: str) -> list[Snippet]:
    """The fenced blocks in order, each with the marker on the line before it, if any."""
    found, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)", lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        before = lines[index - 1].strip() if index else ""
        marker = MARKER.match(before)
        found.append(
            Snippet(
                fence.group(1),
                "\n".join(lines[index + 1 : end]) + "\n",
                index + 1,
                marker.group(1) if marker else None,
                marker.group(2) if marker else None,
            )
        )
        index = end + 1
    return found


def test_every_snippet_is_run_or_says_why_not() -> None:
    blocks = [s for s in snippets(README.read_text()) if s.language in RUNNABLE]
    for block in blocks:
        if block.marker == "skip":
            assert block.reason, f"README.md:{block.line}: a skipped block must say why"
    run = [(b.language, b.marker) for b in blocks if b.marker != "skip"]
    # the README's three paths: the engine from the shell, from Python, and the HTTP walkthrough
    assert ("bash", None) in run and ("python", None) in run and ("bash", "with server") in run


@pytest.fixture
def scratch(tmp_path: Path, tiny_roberta_path: Path) -> tuple[Path, dict]:
    shutil.copytree(ROOT / "tests" / "data", tmp_path / "tests" / "data")
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "LISTSERVE_BACKBONE": str(tiny_roberta_path),
        "OMP_NUM_THREADS": "1",  # two cores shared with the rest of the suite
        "PYTHONPATH": "",
    }
    for name in ("LISTSERVE_DATABASE_URL", "LISTSERVE_STORE", "LISTSERVE_BROKER_URL"):
        env.pop(name, None)
    return tmp_path, env


def _run(block: Snippet, cwd: Path, env: dict) -> None:
    command = (
        ["bash", "-euo", "pipefail", "-c", block.code]
        if block.language == "bash"
        else [sys.executable, "-c", block.code]
    )
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_SECONDS
    )
    assert done.returncode == 0, (
        f"README.md:{block.line} ({block.language}) exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


@pytest.mark.slow
def test_the_readme_snippets_run_as_written(scratch) -> None:
    cwd, env = scratch
    server = None
    try:
        for block in snippets(README.read_text()):
            if block.language not in RUNNABLE or block.marker == "skip":
                continue
            if block.marker == "with server" and server is None:
                server, env = _start_server(cwd, env)
            _run(block, cwd, env)
    finally:
        if server is not None:
            server.terminate()
            server.communicate(timeout=60)
    assert (cwd / "predictions.jsonl").is_file() and (cwd / "served.jsonl").is_file()


def _start_server(cwd: Path, env: dict) -> tuple[subprocess.Popen, dict]:
    """`LISTSERVE_ADMIN_TOKEN=change-me listserve serve`, as the walkthrough starts it."""
    port = free_port()
    env = {**env, "LISTSERVE_PORT": str(port), "LISTSERVE_ADMIN_TOKEN": "change-me"}
    server = subprocess.Popen(
        ["listserve", "serve"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        assert server.poll() is None, "listserve serve exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 120, "listserve serve to be ready")
    return server, env
