"""How many model threads serve batches, and how many torch threads each of their forwards uses.

Why: one model thread whose forwards each use all the cores leaves the cores waiting on one
another at every small op, and a one-row forward ran slower on two torch threads than on one.
On the 2-core benchmark machine two model threads of one torch thread each served 1.18-1.34x
the mixed rows/s of one model thread of two, and 1.33-2.24x in the baselines (docs/notes/
serving-findings.md, `mthreads-1202-*`). More model threads split the queue into smaller batches,
so `auto` stops at two; a GPU runs one kernel stream, so it keeps one.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

AUTO = 0
AUTO_CPU_MODEL_THREADS = 2


@dataclass(frozen=True)
class ServingThreads:
    """`torch_threads` None leaves torch's own choice (or `OMP_NUM_THREADS`) in place."""

    model_threads: int
    torch_threads: int | None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serving_threads(
    model_threads: int,
    torch_threads: int,
    device_type: str,
    environ: Mapping[str, str],
    cores: int,
) -> ServingThreads:
    """The settings' choice, with `AUTO` (0) resolved: on a CPU, up to two model threads that
    split the cores between them, unless `OMP_NUM_THREADS` already fixes the torch threads;
    elsewhere one model thread and torch's own threads."""
    on_cpu = device_type == "cpu"
    if model_threads == AUTO:
        model_threads = min(AUTO_CPU_MODEL_THREADS, cores) if on_cpu else 1
    if torch_threads != AUTO:
        return ServingThreads(model_threads, torch_threads)
    if not on_cpu or "OMP_NUM_THREADS" in environ:
        return ServingThreads(model_threads, None)
    return ServingThreads(model_threads, max(1, cores // model_threads))


def use_serving_threads(model_threads: int, torch_threads: int, device_type: str) -> ServingThreads:
    """Resolve the settings for this process's cores and environment, and give torch its
    thread count; the model thread count is the batcher's to use."""
    threads = serving_threads(model_threads, torch_threads, device_type, os.environ, usable_cores())
    if threads.torch_threads is not None:
        torch.set_num_threads(threads.torch_threads)
    return threads
