"""Engine and sessions for the registry: SQLite (embedded default, WAL) or PostgreSQL by URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite's page cache is per connection (2 MiB by default) and the API process holds several
# (registry read threads, the writer), each filling its cache with the pages its lookups touch,
# so the process grows with the number of registered tasks. Looking up 1,024 tasks on four
# threads grew RSS ~2 MiB at 512 KiB per connection and under 0.6 MiB at 128 KiB, with the same
# lookup time: the OS page cache keeps the file's pages, and a miss here is one pread.
SQLITE_CACHE_KIB = 128


class Database:
    """One engine + session factory per process; `session()` commits or rolls back as a unit."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(listserve_read_only=True)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._statement_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def _create_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True, future=True)
        if self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1e3}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any exception."""
        with self._unit(self._sessions) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """For reads only: on SQLite it takes no write lock, so hot reads never queue behind a
        writer."""
        with self._unit(self._read_sessions) as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection for a hot read of ONE statement (a single statement is consistent
        on its own): autocommit, so it costs no BEGIN and ROLLBACK round trips, and it takes no
        write lock on SQLite."""
        with self._statement_engine.connect() as connection:
            yield connection

    @staticmethod
    @contextmanager
    def _unit(factory: sessionmaker) -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (`alembic upgrade head`)."""
        from service.registry.migrate import upgrade_head

        upgrade_head(self)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    """WAL lets readers run beside the one writer; foreign keys are off by default in SQLite."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    """Writers take the lock at BEGIN, so a read-then-write transaction never fails half way on
    a stale snapshot, and check-then-insert (quotas, versions) is serialised."""
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # one-statement reads: no transaction at all
    connection.exec_driver_sql("BEGIN" if options.get("listserve_read_only") else "BEGIN IMMEDIATE")
