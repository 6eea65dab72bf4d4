"""The interpreter's GIL switch interval in the API process.

Every torch call releases the GIL; getting it back waits for the holder's switch interval (5 ms
by default): beside a busy Python thread a cold adapter load took 552 ms p50 at 5 ms and 72 ms
at 1 ms (benchmarks/micro/cold_load.py). A shorter interval bounds each wait.
"""

import sys


def bound_gil_waits(interval_ms: float) -> None:
    """Let a thread keep the GIL at most `interval_ms` while another waits for it."""
    sys.setswitchinterval(interval_ms / 1000)
