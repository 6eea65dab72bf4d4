"""Subprocesses that tests start, kill and stop, with their output kept in a log file so a
failing test can show what the process said."""

import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class LoggedProcess:
    """A child process (output to `log_path`), killed like a crash or stopped politely."""

    stop_timeout: float = 20.0

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no lease release, no flush; what a crash or OOM does."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
