"""A lower CPU priority for the threads that run the model, so short, latency-bound work goes first.

Why: on a busy CPU the event loop and the adapter loader share the cores with model forwards
that each run for tens of milliseconds. At equal priority a cold load (~3 ms of CPU) waits for
its turn behind them, and every request for that adapter waits with it. Niced by 10, the
forwards still get every core the other threads leave idle, while a load or a request's parsing
runs as soon as it is ready (runs `nice-1203-*`, docs/notes/serving-findings.md).
Another process on the same cores also wins more of them; in a container the nice values only
order this process's threads, its share against other containers is the cgroup's.

Linux keeps a nice value per thread, and a thread inherits it from the thread that creates it:
torch's intra-op threads, a tokenizer's pool and a Celery worker's pool children all follow.
Elsewhere `setpriority` would renice the whole process, so nothing is changed.
"""

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

MAX_NICE = 19


def lower_this_threads_priority(increment: int) -> int | None:
    """Raise the calling thread's nice value by `increment` (at most to 19).

    Returns the new nice value, or None when nothing changed: `increment` is 0, the platform
    has no per-thread nice (not Linux), or the system refused (logged, serving goes on).
    """
    if increment <= 0 or not sys.platform.startswith("linux"):
        return None
    thread_id = threading.get_native_id()
    try:
        nice = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, thread_id) + increment)
        os.setpriority(os.PRIO_PROCESS, thread_id, nice)
    except OSError as error:
        log.warning("could not lower the priority of thread %s: %s", thread_id, error)
        return None
    return nice
