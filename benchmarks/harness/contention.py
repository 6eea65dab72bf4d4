"""A busy pure-Python thread beside a measurement, as a server's event loop is under load."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def busy_python_thread(enabled: bool = True) -> Iterator[None]:
    """While open, a thread runs pure Python (holding the GIL but for switch intervals), so
    every torch call of the measured code that gives the GIL up must win it back."""
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin, daemon=True)
    if enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            thread.join()
