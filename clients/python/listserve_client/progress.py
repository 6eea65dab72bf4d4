"""A text progress bar over a job's events, for `wait(task, progress=True)`.

On a terminal the bar redraws in place; elsewhere (a log, a notebook's captured stderr) it
prints a line when the phase changes or another tenth of the job is done.
"""

import sys
from typing import TextIO

from listserve_client.models import Job, JobEvent

WIDTH = 30


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._last: tuple[str, int] | None = None

    def __call__(self, event: JobEvent) -> None:
        if event.kind == "progress":
            self._draw(event.data)
        elif event.kind in ("started", "queued", "promotion", "released", "lease_expired"):
            self._line(f"{self.label}: {event.kind} {_short(event.data)}")

    def close(self, job: Job) -> None:
        outcome = job.status
        if job.error is not None:
            outcome += f" ({job.error.type}: {job.error.message})"
        if job.result:
            promoted = "promoted" if job.result.get("promoted") else "not promoted"
            outcome += f", version {job.result.get('version')} {promoted}"
        self._line(f"{self.label}: {outcome}")

    def _draw(self, data: dict) -> None:
        fraction = float(data.get("fraction") or 0.0)
        filled = round(fraction * WIDTH)
        eta = data.get("eta_seconds")
        text = (
            f"{self.label}: [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} "
            f"session {data.get('session')}/{data.get('sessions')} {data.get('phase')} "
            f"{data.get('step')}/{data.get('steps')}"
            + (f" eta {eta:.0f}s" if isinstance(eta, int | float) else "")
        )
        if self.interactive:
            self.stream.write("\r" + text.ljust(100))
            self.stream.flush()
            return
        stage = (str(data.get("phase")), int(fraction * 10))
        if stage != self._last:
            self._last = stage
            self._line(text)

    def _line(self, text: str) -> None:
        prefix = "\n" if self.interactive else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()


def _short(data: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in data.items() if key != "owner")
