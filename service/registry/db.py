"""Engine and sessions for the registry: SQLite (embedded default, WAL) or PostgreSQL by URL."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from service.registry.migrate import upgrade_head

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite's page cache is per connection (2 MiB by default) and the API process holds several
# (registry read threads, the writer), each filling its cache with the pages its lookups touch,
# so the process grows with the number of registered tasks. Looking up 1,024 tasks on four
# threads grew RSS ~2 MiB at 512 KiB per connection and under 0.6 MiB at 128 KiB, with the same
# lookup time: the OS page cache keeps the file's pages, and a miss here is one pread.
SQLITE_CACHE_KIB = 128

T = TypeVar("T")


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
        self._held = threading.local()
        self._held_connections: set[Connection] = set()
        self._held_lock = threading.Lock()

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

    def read(self, statement: Callable[..., T], *args) -> T:
        """`statement(connection, *args)` for a hot read of ONE statement (a single statement is
        consistent on its own), on a connection the calling thread keeps between calls.

        The connection is autocommit, so a read costs no BEGIN and ROLLBACK round trips, takes
        no write lock on SQLite and holds no snapshot between calls: each read sees every
        commit before it. It is kept because checking a pooled connection out and back in
        (with its isolation-level reset) cost about twice the query itself: on SQLite ~120
        against ~35 us of CPU per lookup. So call this only from a fixed set of threads (the
        API's registry readers), each of which holds one pooled connection until `dispose`.
        A connection found dead (a restarted PostgreSQL) is dropped and the read retried once
        on a new one, as the pool's pre-ping would have done.
        """
        connection = self._held_connection()
        try:
            return statement(connection, *args)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return statement(self._held_connection(), *args)

    def _held_connection(self) -> Connection:
        """This thread's read connection; a new one when it has none, or one that was
        invalidated or closed (by `dispose`)."""
        connection = getattr(self._held, "connection", None)
        if connection is not None and not (connection.invalidated or connection.closed):
            return connection
        if connection is not None:
            with self._held_lock:
                self._held_connections.discard(connection)
            connection.close()
        connection = self._statement_engine.connect()
        with self._held_lock:
            self._held_connections.add(connection)
        self._held.connection = connection
        return connection

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
        upgrade_head(self.engine)

    def dispose(self) -> None:
        """Close every thread's held read connection (their threads are done by now), then
        the pool."""
        with self._held_lock:
            held, self._held_connections = self._held_connections, set()
        for connection in held:
            connection.close()
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
