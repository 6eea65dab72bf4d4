"""Choosing the API process's allocator: when `listserve serve` re-executes under jemalloc."""

import os
import subprocess
import sys

import pytest

from service.cli import main
from service.process import allocator
from service.process.allocator import (
    AllocatorUnavailableError,
    jemalloc_library,
    preload_environment,
)
from service.settings import Settings
from tests.processes import REPO


@pytest.fixture
def library(monkeypatch) -> str:
    """jemalloc installed under a known name, and this process not running it yet."""
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: "libjemalloc.so.2")
    monkeypatch.setattr(allocator, "active_allocator", lambda: "system")
    return "libjemalloc.so.2"


@pytest.mark.parametrize("choice", ["auto", "jemalloc"])
def test_jemalloc_is_appended_to_the_preload_list(library, choice: str) -> None:
    environ = {"PATH": "/bin", "LD_PRELOAD": "libfirst.so"}
    assert preload_environment(choice, environ) == {
        "PATH": "/bin",
        "LD_PRELOAD": f"libfirst.so {library}",
    }
    assert preload_environment(choice, {})["LD_PRELOAD"] == library
    assert environ["LD_PRELOAD"] == "libfirst.so"  # the caller's mapping is left alone


def test_system_and_an_active_jemalloc_need_no_restart(library, monkeypatch) -> None:
    assert preload_environment("system", {}) is None
    monkeypatch.setattr(allocator, "active_allocator", lambda: "jemalloc")
    assert preload_environment("auto", {}) is None
    assert preload_environment("jemalloc", {}) is None


def test_auto_serves_with_malloc_when_jemalloc_is_missing_or_failed(library, monkeypatch) -> None:
    # already in LD_PRELOAD but not mapped: the dynamic linker ignored it; no second exec
    assert preload_environment("auto", {"LD_PRELOAD": library}) is None
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: None)
    assert preload_environment("auto", {}) is None


def test_required_jemalloc_that_is_missing_or_failed_is_refused(library, monkeypatch) -> None:
    with pytest.raises(AllocatorUnavailableError, match=r"LISTSERVE_ALLOCATOR=jemalloc.*preloaded"):
        preload_environment("jemalloc", {"LD_PRELOAD": library})
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: None)
    with pytest.raises(AllocatorUnavailableError, match="not installed"):
        preload_environment("jemalloc", {})


def test_an_unknown_allocator_is_refused_by_name(monkeypatch) -> None:
    with pytest.raises(ValueError, match="LISTSERVE_ALLOCATOR"):
        preload_environment("tcmalloc", {})
    monkeypatch.setenv("LISTSERVE_ALLOCATOR", "tcmalloc")
    with pytest.raises(ValueError, match="allocator"):
        Settings()


@pytest.mark.skipif(jemalloc_library() is None, reason="jemalloc is not installed")
def test_the_running_allocator_is_detected() -> None:
    command = [
        sys.executable,
        "-c",
        "from service.process.allocator import active_allocator; print(active_allocator())",
    ]
    environ = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    for preload, expected in ((None, "system"), (jemalloc_library(), "jemalloc")):
        env = environ if preload is None else {**environ, "LD_PRELOAD": preload}
        output = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
        assert output.stdout.strip() == expected, output.stderr


def test_serve_stops_with_a_clear_message_when_required_jemalloc_is_missing(
    monkeypatch,
) -> None:
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: None)
    monkeypatch.setattr(allocator, "active_allocator", lambda: "system")
    monkeypatch.setenv("LISTSERVE_ALLOCATOR", "jemalloc")
    with pytest.raises(SystemExit, match="LISTSERVE_ALLOCATOR=jemalloc, but jemalloc is not"):
        main(["serve"])
