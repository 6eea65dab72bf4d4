"""The in-process runner: training threads inside the API process (no broker configured).

Real execution, the same `execute_job` a Celery worker runs. At start-up and then periodically
it re-submits jobs a previous process left queued or whose lease went stale, so a restart
resumes unfinished work.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from service.jobs.context import JobContext
from service.jobs.execute import execute_job
from service.jobs.runner import RunnerUnavailable
from service.jobs.sweep import JobSweeper
from service.process.cpu_priority import lower_this_threads_priority
from service.registry.jobs import mark_enqueued

log = logging.getLogger(__name__)


class InProcessRunner:
    kind = "in-process"

    def __init__(
        self,
        context: JobContext,
        threads: int,
        sweep_interval_seconds: float,
        nice: int,
    ) -> None:
        self.context = context
        self.threads = threads
        self.nice = nice
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper = JobSweeper(
            context.database, self.submit, sweep_interval_seconds, sweep_interval_seconds
        )

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            self.threads,
            thread_name_prefix="listserve-train",
            initializer=lower_this_threads_priority,
            initargs=(self.nice,),
        )
        self._sweeper.start()

    def submit(self, job_id: str) -> None:
        with self._lock:
            if self._executor is None or self._stop.is_set():
                raise RunnerUnavailable("the in-process job runner is not running")
            if job_id in self._pending:
                return
            self._pending.add(job_id)
            self._executor.submit(self._run, job_id)
        with self.context.database.session() as session:
            mark_enqueued(session, job_id)

    def stop(self) -> None:
        """Interrupt training (jobs go back to `queued`) and wait for the threads to finish."""
        self._stop.set()
        self.context.shutdown.set()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._sweeper.stop()

    def describe(self) -> dict:
        with self._lock:
            pending = len(self._pending)
        return {"kind": self.kind, "threads": self.threads, "pending_jobs": pending}

    def _run(self, job_id: str) -> None:
        try:
            outcome = execute_job(job_id, self.context)
            log.info("job ended", extra={"job_id": job_id, "outcome": outcome.value})
        except Exception:
            log.exception("job function crashed", extra={"job_id": job_id})
        finally:
            with self._lock:
                self._pending.discard(job_id)
