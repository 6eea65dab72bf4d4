"""A server's resident memory, sampled in the background while a point runs."""

import statistics
import threading


class RssSampler:
    """Samples the server's resident set size in the background over a window: `peak_mb`, and
    `median_mb`, which a passing spike (a batch's activations, a load's buffers) does not move.

    It also splits RSS into anonymous memory (the process's own: weights, caches, activations)
    and resident pages of mapped files (torch's and oneDNN's libraries, about 220 MB here). The
    file part depends on how the page cache holds those libraries, not on the server's work:
    `listserve serve` from a fresh clone held RssFile 320, then 225 after the page cache was
    dropped, then 333 after its libraries were read whole, with RssAnon 440 MB each time."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self.anon_peak = 0
        self.samples: list[int] = []
        self.file_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        memory = self.process.memory_info()  # `shared`: resident pages backed by files
        self.samples.append(memory.rss)
        self.file_samples.append(memory.shared)
        self.peak = max(self.peak, memory.rss)
        self.anon_peak = max(self.anon_peak, memory.rss - memory.shared)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def median_mb(self) -> float:
        return round(statistics.median(self.samples) / 2**20, 1)

    @property
    def anon_peak_mb(self) -> float:
        return round(self.anon_peak / 2**20, 1)

    @property
    def file_median_mb(self) -> float:
        return round(statistics.median(self.file_samples) / 2**20, 1)
