"""Which C functions a piece of code calls, by module: the tests that keep GIL releases out of
a cold load count them (each torch op or system call releases the GIL)."""

import sys
from collections.abc import Callable


def c_calls(action: Callable[[], object]) -> list[tuple[str, str]]:
    """(module, name) of every C function `action` calls, in order, from this thread."""
    calls: list[tuple[str, str]] = []

    def record(frame, event: str, function) -> None:
        if event != "c_call":
            return
        owner = getattr(function, "__self__", None)
        module = getattr(function, "__module__", None) or type(owner).__module__
        calls.append((module, function.__name__))

    sys.setprofile(record)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls
