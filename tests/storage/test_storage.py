"""The database layer: SQLite settings, migrations, and the hash chain."""

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.engine import Engine
from orchestrator.readers.export import verify_all, verify_run
from storage import migrate
from storage.engine import Database
from storage.models import Event, StepExecution, TraceEntry
from storage.rows import complete


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30000


def test_writes_take_the_lock_at_begin(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer waits at BEGIN instead of failing mid-transaction.
    Seen from another connection: while a write transaction is open, before it has written
    anything, no one else can begin one; while a read is open, someone else can."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    other = sqlite3.connect(tmp_path / "x.db", timeout=0, isolation_level=None)

    def another_writer_can_begin() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # database is locked
            return False
        other.execute("ROLLBACK")
        return True

    assert another_writer_can_begin()
    with db.write() as s:
        s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
        assert not another_writer_can_begin()
    with db.writer():
        assert not another_writer_can_begin()
    with db.read() as s:
        s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
        assert another_writer_can_begin()
    other.close()


def test_migration_head_constant_matches_the_scripts(tmp_path: Path) -> None:
    assert migrate.script_head() == migrate.HEAD
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert migrate.current_revision(db) is None
    assert migrate.upgrade(db) == migrate.HEAD
    migrate.ensure_schema(db)  # a no-op now
    assert migrate.upgrade(db) == migrate.HEAD


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], "models changed without a migration: alembic revision --autogenerate"


def test_changing_one_stored_entry_breaks_the_chain_at_that_entry(engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    engine.decide(run.ref, "bob", "approve", reason="Checked")
    assert verify_run(engine.db, engine.get_run(run.ref)) is None
    with engine.db.write() as s:
        entry = s.exec(select(TraceEntry).where(TraceEntry.chain == run.ref,
                                                TraceEntry.kind == "decision")).one()
        entry.data = {**entry.data, "reason": "something else"}
        s.add(entry)
    problem = verify_run(engine.db, engine.get_run(run.ref))
    assert problem is not None and problem.seq == entry.seq
    assert "content does not match its hash" in str(problem)
    checked, breaks = verify_all(engine.db)
    assert checked == 2 and [b.chain for b in breaks] == [run.ref]


def test_the_migration_that_stops_storing_prev_hash_keeps_every_chain(engine: Engine) -> None:
    """0009 drops `prev_hash` (the previous entry's hash, stored a second time): down to 0008
    it comes back as exactly that hash, and up again every chain still verifies."""
    from alembic import command

    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    engine.decide(run.ref, "bob", "approve", reason="Checked")
    db = engine.db
    db.engine.dispose()

    def to(revision: str) -> None:
        cfg = migrate._config(db)
        with db.engine.execution_options(baton_write=True).connect() as conn, conn.begin():
            cfg.attributes["connection"] = conn
            (command.downgrade if revision != "head" else command.upgrade)(cfg, revision)

    to("0008")
    with db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT seq, prev_hash, hash FROM trace_entry "
                                      "WHERE chain = :c ORDER BY seq"), {"c": run.ref}).all()
    assert len(stored) > 3
    assert [p for _, p, _ in stored] == ["", *[h for _, _, h in stored[:-1]]]
    to("head")
    assert migrate.current_revision(db) == migrate.HEAD
    assert verify_run(db, engine.get_run(run.ref)) is None
    checked, breaks = verify_all(db)
    assert checked == 2 and breaks == []


def test_removing_the_last_entries_is_detected(engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "5000"}, "alice")
    with engine.db.write() as s:
        last = s.exec(select(TraceEntry).where(TraceEntry.chain == run.ref)
                      .order_by(TraceEntry.seq.desc())).first()  # type: ignore[union-attr]
        s.delete(last)
    problem = verify_run(engine.db, engine.get_run(run.ref))
    assert problem is not None and "entries were removed from the end" in str(problem)


def test_writers_queue_in_process_and_an_urgent_write_goes_first() -> None:
    """A Slack request's write (urgent) must not wait behind run steps queued before it."""
    import threading
    import time

    from storage.engine import WriterQueue

    queue = WriterQueue()
    order: list[str] = []
    waiting = threading.Barrier(3)

    def writer(name: str, urgent: bool) -> None:
        waiting.wait()
        if not urgent:
            time.sleep(0.05)  # the ordinary writer asks first ...
        else:
            time.sleep(0.1)  # ... the urgent one later
        with queue.hold(urgent):
            order.append(name)

    with queue.hold():
        with queue.hold():  # the same thread again: re-entrant, no deadlock
            pass
        threads = [threading.Thread(target=writer, args=("step", False)),
                   threading.Thread(target=writer, args=("slack", True))]
        for t in threads:
            t.start()
        waiting.wait()
        time.sleep(0.3)  # both are waiting now
        assert order == []  # nobody writes while the lock is held
    for t in threads:
        t.join(5)
    assert order == ["slack", "step"]


@pytest.mark.parametrize("urgent_waits", [True, False], ids=["sqlite", "postgresql"])
def test_a_write_inside_a_write_of_the_same_thread_never_waits_for_it(urgent_waits: bool) -> None:
    """Re-entrant per thread, urgent or not, and also inside an urgent write that bypassed
    the queue (PostgreSQL): the inner write used to wait for the outer one forever. Once
    the outer one ends, a writer that queued meanwhile gets its turn."""
    import threading

    from storage.engine import WriterQueue

    queue = WriterQueue(urgent_waits=urgent_waits)
    for outer, inner in ((True, False), (True, True), (False, True), (False, False)):
        inside, queued = threading.Event(), threading.Event()

        def nested(outer: bool = outer, inner: bool = inner, inside: threading.Event = inside) -> None:
            with queue.hold(urgent=outer), queue.hold(urgent=inner), queue.hold():
                inside.set()

        def other(queued: threading.Event = queued) -> None:
            with queue.hold():
                queued.set()

        thread = threading.Thread(target=nested, daemon=True)
        thread.start()
        assert inside.wait(5), (outer, inner)
        thread.join(5)
        waiter = threading.Thread(target=other, daemon=True)
        waiter.start()
        assert queued.wait(5), (outer, inner)  # nothing of the nested writes is left held
        waiter.join(5)


def test_this_process_writes_one_transaction_at_a_time_on_either_database(database_url: str) -> None:
    """On PostgreSQL too: side by side, this process's writers only took turns at the
    interpreter lock, and a Slack request waited behind them (bench/click_ack.py). There
    a Slack request's (urgent) write does not wait for the one in progress, which may be
    stuck on a row lock; and another process (here another Database) writes alongside."""
    import threading

    db, replica = Database(database_url), Database(database_url)
    entered = {True: threading.Event(), False: threading.Event()}

    def writer(urgent: bool) -> None:
        with db.write(urgent=urgent) as s:
            s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
            entered[urgent].set()

    try:
        with db.write() as s:
            s.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
            threads = [threading.Thread(target=writer, args=(urgent,)) for urgent in (False, True)]
            for thread in threads:
                thread.start()
            assert not entered[False].wait(0.3)  # it waits for this transaction, holding no connection
            if db.is_postgresql:
                assert entered[True].wait(5)
                with replica.write() as other:
                    other.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
            else:
                assert not entered[True].is_set()  # SQLite: one writer at a time, urgent or not
            assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        for thread in threads:
            thread.join(5)
        assert entered[False].is_set() and entered[True].is_set()
    finally:
        db.dispose()
        replica.dispose()


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(database_url: str) -> None:
    """Only a connection idle for a while is pinged (storage.engine.PING_IDLE_AFTER_S), and
    one the server closed meanwhile (a restart, an idle timeout) never reaches a write."""
    import time

    from storage.engine import PING_IDLE_AFTER_S

    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's server-side connections")
    db = Database(database_url)
    try:
        with db.write() as s:
            before = s.exec(sa.text("SELECT pg_backend_pid()")).scalar()  # type: ignore[call-overload]
        with db.write() as s:  # the pool hands the same connection back
            assert s.exec(sa.text("SELECT pg_backend_pid()")).scalar() == before  # type: ignore[call-overload]
        with sa.create_engine(database_url, poolclass=sa.pool.NullPool).connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": before}).scalar()
        time.sleep(PING_IDLE_AFTER_S + 0.1)
        with db.write() as s:
            after = s.exec(sa.text("SELECT pg_backend_pid()")).scalar()  # type: ignore[call-overload]
        assert after != before
    finally:
        db.dispose()


def test_a_plain_row_gets_the_models_defaults_and_names_what_it_lacks() -> None:
    at = datetime(2026, 11, 21, 12, 0)
    row = complete(Event, {"run_id": 1, "kind": "run_started", "created_at": at})
    assert row == {"run_id": 1, "kind": "run_started", "seq": None, "payload": {}, "created_at": at,
                   "delivered_at": None, "attempts": 0, "next_attempt_at": None,
                   "last_error": None}
    other = complete(Event, {"run_id": 2, "kind": "run_started", "created_at": at})
    assert other["payload"] is not row["payload"]  # a fresh dict per row
    with pytest.raises(TypeError, match="needs node, started_at"):
        complete(StepExecution, {"run_id": 1, "kind": "gate", "status": "done"})
