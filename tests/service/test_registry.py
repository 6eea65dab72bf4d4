"""The registry on both backends: migrations, tenants, quotas, the job lease protocol,
idempotent adapter registration, cancellation and paging."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from service.auth import hash_key
from service.registry import adapters, jobs, tasks, tenants
from service.registry.db import SQLITE_CACHE_KIB, Database
from service.registry.migrate import alembic_config
from service.registry.models import AdapterVersion, ApiKey, Base, Job, utcnow
from service.registry.paging import UnknownCursor

QUOTAS = tasks.Quotas(max_tasks=10, max_active_jobs=10)


def new_task(tenant_id: str, name: str = "t") -> tasks.NewTask:
    return tasks.NewTask(
        tenant_id=tenant_id,
        name=name,
        labels=["a", "b"],
        template="{text} It was {mask} .",
        label_words={"a": "great", "b": "bad"},
        method="list",
        head_kind="mlm",
        hyperparameters={"budget": "fast"},
        examples=[{"text": "x", "label": "a"}, {"text": "y", "label": "b"}],
        unlabeled=["z"],
    )


def make_task(database: Database, quotas: tasks.Quotas = QUOTAS, max_attempts: int = 3):
    with database.session() as session:
        tenant, _ = tenants.create_tenant(session, "acme")
    with database.session() as session:
        task, job = tasks.create_task(session, new_task(tenant.id), quotas, max_attempts)
    return tenant.id, task.id, job.id


def register(database: Database, job_id: str, owner: str, version: int = 1):
    with database.session() as session:
        return adapters.register_adapter(
            session,
            job_id,
            owner,
            version,
            path=f"x/y/v{version}-abc",
            sha256="0" * 64,
            size_bytes=10,
            backbone_fingerprint="tiny@1234",
            metrics={"steps": 3},
        )


def test_migrations_reach_head_and_match_the_models(database: Database) -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"the revisions must form one chain, found heads {heads}"
    with database.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == heads[0]
    database.migrate()  # a second start-up is a no-op
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_tenant_keys_are_stored_only_as_hashes(database: Database) -> None:
    with database.session() as session:
        tenant, secret = tenants.create_tenant(session, "acme")
    with database.read_session() as session:
        stored = session.scalars(select(ApiKey)).all()
        assert [key.key_hash for key in stored] == [hash_key(secret)]
        assert secret not in {key.key_hash for key in stored} | {key.prefix for key in stored}
        assert tenants.tenant_id_for_key_hash(session, hash_key(secret)) == tenant.id
        assert tenants.tenant_id_for_key_hash(session, hash_key(secret + "x")) is None


def test_task_quotas(database: Database) -> None:
    with database.session() as session:
        tenant, _ = tenants.create_tenant(session, "acme")
    quotas = tasks.Quotas(max_tasks=2, max_active_jobs=1)
    with database.session() as session:
        tasks.create_task(session, new_task(tenant.id), quotas, 3)
    with pytest.raises(tasks.QuotaExceeded) as active, database.session() as session:
        tasks.create_task(session, new_task(tenant.id), quotas, 3)
    assert active.value.kind == "active_jobs"
    with database.session() as session:
        tasks.create_task(session, new_task(tenant.id), tasks.Quotas(2, 5), 3)
    with pytest.raises(tasks.QuotaExceeded) as total, database.session() as session:
        tasks.create_task(session, new_task(tenant.id), tasks.Quotas(2, 5), 3)
    assert total.value.kind == "tasks"
    with database.read_session() as session:
        assert tasks.count_tasks(session, tenant.id) == 2


def test_claim_lease_heartbeat_and_finish(database: Database) -> None:
    _, task_id, job_id = make_task(database)
    with database.session() as session:
        claim = jobs.claim_job(session, job_id, "w1", lease_seconds=30)
    assert claim.claimed and claim.job.attempts == 1 and claim.job.started_at is not None
    with database.session() as session:
        assert jobs.claim_job(session, job_id, "w2", 30).outcome is jobs.ClaimOutcome.LEASED
        assert jobs.renew_lease(session, job_id, "w1", 30) == jobs.LeaseState(held=True)
        assert jobs.renew_lease(session, job_id, "w2", 30).held is False
        assert not jobs.finish_job(session, job_id, "w2", "failed", error="not mine")
        assert jobs.finish_job(session, job_id, "w1", "failed", error="boom")
    with database.read_session() as session:
        job = jobs.get_job(session, job_id)
        task = tasks.get_task_any_tenant(session, task_id)
    assert (job.status, job.error, task.status) == ("failed", "boom", "failed")
    assert job.lease_owner is None and job.finished_at is not None
    with database.session() as session:
        assert jobs.claim_job(session, job_id, "w1", 30).outcome is jobs.ClaimOutcome.FINISHED


def test_stale_lease_is_swept_and_reclaimed_as_a_new_attempt(database: Database) -> None:
    _, _, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "dead-worker", lease_seconds=30)
    later = utcnow() + timedelta(seconds=60)
    with database.session() as session:
        assert jobs.sweep_stale_leases(session, now=utcnow()) == []
        assert jobs.sweep_stale_leases(session, now=later) == [job_id]
    with database.session() as session:
        claim = jobs.claim_job(session, job_id, "w2", 30)
        assert claim.claimed and claim.job.attempts == 2
        # the dead worker comes back: its lease is gone, so it can change nothing
        assert jobs.renew_lease(session, job_id, "dead-worker", 30).held is False
    assert register(database, job_id, "dead-worker").outcome.value == "lease_lost"
    with database.read_session() as session:
        kinds = [e.kind for e in jobs.list_events(session, job_id, None, 50)[0]]
    assert kinds == ["queued", "started", "lease_expired", "started"]


def test_attempts_are_capped(database: Database) -> None:
    _, task_id, job_id = make_task(database, max_attempts=2)
    for attempt in range(2):
        with database.session() as session:
            now = utcnow() + timedelta(seconds=100 * attempt)
            assert jobs.claim_job(session, job_id, f"w{attempt}", 10, now=now).claimed
    with database.session() as session:
        claim = jobs.claim_job(session, job_id, "w9", 10, now=utcnow() + timedelta(seconds=500))
    assert claim.outcome is jobs.ClaimOutcome.GAVE_UP
    with database.read_session() as session:
        job = jobs.get_job(session, job_id)
        assert job.status == "failed" and "gave up after 2 attempts" in job.error
        assert tasks.get_task_any_tenant(session, task_id).status == "failed"


def test_registration_is_atomic_and_idempotent(database: Database) -> None:
    _, task_id, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "w1", 30)
    first = register(database, job_id, "w1")
    assert first.outcome is adapters.RegisterOutcome.REGISTERED
    again = register(database, job_id, "w1")
    assert again.outcome is adapters.RegisterOutcome.ALREADY_REGISTERED
    assert again.version.version == 1
    with database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(AdapterVersion)) == 1
        job = jobs.get_job(session, job_id)
        task = tasks.get_task_any_tenant(session, task_id)
        assert (job.status, task.status) == ("succeeded", "ready")
        assert job.metrics == {"steps": 3, "version": 1, "promoted": True}
        assert adapters.latest_adapter(session, task_id).version == 1
        assert adapters.next_version(session, task_id) == 2


def test_registration_refuses_a_taken_version(database: Database) -> None:
    _, _, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "w1", 30)
    assert register(database, job_id, "w1", version=2).outcome.value == "version_taken"
    assert register(database, job_id, "w1", version=1).outcome.value == "registered"


def test_cancel_queued_running_and_finished(database: Database) -> None:
    _, task_id, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "w1", 30)
        assert jobs.request_cancel(session, job_id).status == "cancel_requested"
        assert jobs.renew_lease(session, job_id, "w1", 30).cancel_requested
    # a job that finished training after the cancel must not register
    assert register(database, job_id, "w1").outcome is adapters.RegisterOutcome.CANCELLED
    with database.read_session() as session:
        assert jobs.get_job(session, job_id).status == "cancelled"
        assert tasks.get_task_any_tenant(session, task_id).status == "cancelled"
        assert adapters.latest_adapter(session, task_id) is None
    with pytest.raises(jobs.JobAlreadyFinished), database.session() as session:
        jobs.request_cancel(session, job_id)
    _, _, queued_id = make_task(database)
    with database.session() as session:
        assert jobs.request_cancel(session, queued_id).status == "cancelled"
        assert jobs.claim_job(session, queued_id, "w1", 30).outcome.value == "finished"
        assert jobs.request_cancel(session, "job_missing") is None


def test_release_on_shutdown_does_not_count_the_attempt(database: Database) -> None:
    _, _, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "w1", 30)
        assert jobs.release_job(session, job_id, "w1", "shutdown")
    with database.read_session() as session:
        job = jobs.get_job(session, job_id)
        assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
        assert jobs.queued_job_ids(session) == [job_id]


def test_job_listing_filters_and_pages(database: Database) -> None:
    ids = [make_task(database)[2] for _ in range(5)]
    with database.session() as session:
        jobs.request_cancel(session, ids[0])
        tenant_of_last = jobs.get_job(session, ids[-1]).tenant_id
    with database.read_session() as session:
        first, more = jobs.list_jobs(session, limit=2)
        second, _ = jobs.list_jobs(session, limit=2, after=first[-1].id)
        everything, no_more = jobs.list_jobs(session, limit=10)
        cancelled, _ = jobs.list_jobs(session, limit=10, status="cancelled")
        mine, _ = jobs.list_jobs(session, limit=10, tenant_id=tenant_of_last)
        with pytest.raises(UnknownCursor):
            jobs.list_jobs(session, limit=2, after="job_nope")
    assert more and not no_more
    assert [j.id for j in everything] == ids[::-1]
    assert [j.id for j in first + second] == ids[::-1][:4]
    assert [j.id for j in cancelled] == [ids[0]]
    assert [j.id for j in mine] == [ids[-1]]


def test_tasks_are_scoped_to_their_tenant_and_deletion_cancels(database: Database) -> None:
    tenant_id, task_id, job_id = make_task(database)
    with database.session() as session:
        other, _ = tenants.create_tenant(session, "other")
    with database.read_session() as session:
        assert tasks.get_task(session, other.id, task_id) is None
        assert tasks.get_task(session, tenant_id, task_id).id == task_id
        assert tasks.list_tasks(session, other.id, 10, None) == ([], False)
    with database.session() as session:
        assert tasks.delete_task(session, other.id, task_id) is None
        assert tasks.delete_task(session, tenant_id, task_id) is not None
    with database.read_session() as session:
        assert tasks.get_task(session, tenant_id, task_id) is None
        assert tasks.get_task_data(session, task_id) is None
        assert session.get(Job, job_id).status == "cancelled"
        assert tasks.count_tasks(session, tenant_id) == 0


def _idle(connection) -> bool:
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, sqlite3.Connection):
        return not dbapi.in_transaction
    return dbapi.info.transaction_status == dbapi.info.transaction_status.IDLE


def test_hot_serving_reads_leave_no_transaction_and_see_new_versions(database: Database) -> None:
    """`read` runs one autocommit statement: no BEGIN/ROLLBACK per request, nothing left open
    on the connection the thread keeps, and a version registered meanwhile is seen at once."""
    tenant_id, task_id, job_id = make_task(database)
    with database.session() as session:
        jobs.claim_job(session, job_id, "worker-1", 60)
    before = database.read(adapters.serving_target, tenant_id, task_id)
    assert before is not None and before.version is None
    assert database.read(lambda connection: _idle(connection))
    register(database, job_id, "worker-1")  # a writer is not blocked by the kept connection
    assert database.read(adapters.serving_target, tenant_id, task_id).version == 1


def test_each_thread_keeps_one_read_connection_until_dispose(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    opened: list[int] = []
    event.listen(database.engine, "checkout", lambda *_: opened.append(1))
    try:
        main = {database.read(id) for _ in range(20)}
        with ThreadPoolExecutor(2) as pool:
            others = set(pool.map(lambda _: database.read(id), range(40)))
        assert len(main) == 1 and len(others) <= 2 and not main & others
        assert len(opened) == len(main | others)  # no checkout per read
        assert database.engine.pool.checkedout() == len(main | others)
    finally:
        database.dispose()
    assert database.engine.pool.checkedout() == 0
    assert database.read(lambda connection: connection.exec_driver_sql("SELECT 1").scalar()) == 1
    database.dispose()


def test_a_read_on_a_dead_connection_reconnects_and_succeeds(database: Database) -> None:
    """The kept connection dies under the reader (SQLite: closed beneath SQLAlchemy;
    PostgreSQL: its backend terminated, as a server restart does); the next read is still
    answered, on a new connection."""
    tenant_id, task_id, _ = make_task(database)
    first = database.read(lambda connection: connection)
    if database.is_sqlite:
        first.connection.dbapi_connection.close()
    else:
        pid = first.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with database.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    row = database.read(adapters.serving_target, tenant_id, task_id)
    assert row is not None and list(row.labels) == ["a", "b"]
    assert database.read(lambda connection: connection) is not first
    assert first.closed


def test_a_failed_read_that_is_not_a_disconnect_is_raised_and_keeps_the_connection(
    database: Database,
) -> None:
    first = database.read(lambda connection: connection)
    with pytest.raises(DBAPIError):
        database.read(lambda connection: connection.exec_driver_sql("SELECT * FROM no_such"))
    assert database.read(lambda connection: connection) is first


def test_every_sqlite_connection_has_wal_foreign_keys_and_a_bounded_page_cache(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    try:
        for engine in (database.engine, database._read_engine):
            with engine.connect() as connection:

                def pragma(name: str, connection=connection):
                    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

                assert pragma("journal_mode") == "wal"
                assert pragma("foreign_keys") == 1
                assert pragma("cache_size") == -SQLITE_CACHE_KIB
    finally:
        database.dispose()
