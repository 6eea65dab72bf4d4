"""The API process's memory allocator: jemalloc when it is installed, glibc's malloc otherwise.

Why: the scripted forward runs on the real tokens only, so every mixed batch allocates
activations of a new size. glibc's malloc keeps what each size freed, spread over its heaps,
and faults fresh pages in for the next sizes; jemalloc reuses freed runs by size class. In the
serving benchmark (same commit, back to back) jemalloc served 18-38 % more mixed rows/s and RSS
grew +267 instead of +343 MB from 1 to 1,024 adapters (docs/notes/serving-findings.md, sweep-1202d).

An allocator can only be swapped before the process starts, so `listserve serve` re-executes
itself once with jemalloc in `LD_PRELOAD` (`LISTSERVE_ALLOCATOR`: auto, jemalloc or system).
"""

import ctypes.util
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

Allocator = Literal["auto", "jemalloc", "system"]
ALLOCATORS = get_args(Allocator)
MAPS = Path("/proc/self/maps")

log = logging.getLogger(__name__)


class AllocatorUnavailableError(RuntimeError):
    """`LISTSERVE_ALLOCATOR=jemalloc`, but jemalloc cannot be found or preloaded."""


def jemalloc_library() -> str | None:
    """The shared library's name as the dynamic linker finds it (e.g. libjemalloc.so.2)."""
    return ctypes.util.find_library("jemalloc")


def active_allocator() -> str:
    """`jemalloc` when it is mapped into this process, else `system`."""
    try:
        maps = MAPS.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"


def preload_environment(choice: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute this process with, or None to go on as it is."""
    if choice not in ALLOCATORS:
        raise ValueError(f"LISTSERVE_ALLOCATOR must be one of {ALLOCATORS}, got {choice!r}")
    if choice == "system" or active_allocator() == "jemalloc":
        return None
    library = jemalloc_library()
    preloaded = environ.get("LD_PRELOAD", "").split()
    if library is None or library in preloaded:  # not installed, or the preload already failed
        if choice == "jemalloc":
            reason = (
                "is not installed (e.g. apt install libjemalloc2)"
                if library is None
                else f"could not be preloaded ({library})"
            )
            raise AllocatorUnavailableError(f"LISTSERVE_ALLOCATOR=jemalloc, but jemalloc {reason}")
        log.warning("jemalloc not available; serving with the system malloc")
        return None
    return {**environ, "LD_PRELOAD": " ".join([*preloaded, library])}


def reexec_with_allocator(choice: str) -> None:
    """Replace this process by the same command under jemalloc when `choice` asks for it and it
    is not running yet; return when nothing needs to change."""
    environment = preload_environment(choice, os.environ)
    if environment is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environment)
