"""Reading a thread's nice value, for the tests of the lowered CPU priority (Linux only: there
a nice value is per thread)."""

import os
import sys
import threading
from collections.abc import Callable

import pytest

from service.process.cpu_priority import MAX_NICE

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def nice_with_room_for(increment: int) -> int:
    """This thread's nice value; skips the test when lowering it by `increment` would hit 19."""
    base = own_nice()
    if base + increment > MAX_NICE:
        pytest.skip("the test process already runs at the lowest priority")
    return base


def in_a_thread(action: Callable[[], object]) -> tuple[object, int]:
    """What `action` returns in a new thread, and that thread's nice value afterwards."""
    result: list = []
    thread = threading.Thread(target=lambda: result.extend([action(), own_nice()]))
    thread.start()
    thread.join()
    return result[0], result[1]
