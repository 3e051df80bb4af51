"""The database engine and transactions.

Every write goes through `Database.write()`. On SQLite that transaction starts with
`BEGIN IMMEDIATE`, so a second writer waits on the busy timeout for the lock instead of
failing half way with "database is locked" when it tries to upgrade a read lock. On
PostgreSQL the same code takes row locks with `SELECT ... FOR UPDATE` (see
`storage.dialect`); nothing here is SQLite-only SQL. On both, this process's write
transactions take turns (`WriterQueue`).

Work that must happen only once the transaction is durable (waking the scheduler,
delivering events) is registered with `after_commit` and runs after COMMIT returns.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session

from storage.rows import WriteSession
from storage.writer import Writer

SQLITE_BUSY_TIMEOUT_MS = 30_000


def store_json(value: Any) -> str:
    """How JSON columns are written: without the spaces after `,` and `:` and with text as
    UTF-8 rather than `\\u` escapes (270 bytes of a finished run's 7.5 KB in the benchmark,
    more for text that is not English; read back the same)."""
    if not value and type(value) in _EMPTY:  # most JSON columns of a row hold {} or []
        return _EMPTY[type(value)]
    return _ENCODER.encode(value)


_EMPTY: dict[type, str] = {dict: "{}", list: "[]"}


# One encoder for every value: `json.dumps` with options builds a new one per call, which
# takes as long as encoding a small dict (a run writes about 40).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def make_engine(url: str) -> Engine:
    """Create the engine for `url`, with Baton's connection settings."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=16,
            json_serializer=store_json,
        )
        _configure_sqlite(engine)
        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=20, json_serializer=store_json)
    _ping_when_idle(engine)
    return engine


# A pooled connection that sat idle may have been closed by the server (a restart, a
# failover, an idle timeout); one used a moment ago is alive. SQLAlchemy's pool_pre_ping
# pings on every checkout, and under load those pings were a sixth of all the statements
# sent to PostgreSQL, each a round trip that hands the interpreter to another thread
# (bench/click_ack.py). So only a connection idle for longer than this is pinged.
PING_IDLE_AFTER_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only: a ping that
    fails raises DisconnectionError, and the pool replaces the connection (up to three
    times) before handing it out."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")  # None: a new connection
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_AFTER_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"an idle connection was closed: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below issue BEGIN itself: the sqlite3 module's
        # implicit transactions would start DEFERRED and only on the first write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.connection.dbapi_connection.in_transaction:  # begun by `Database.writer`
            return
        mode = "IMMEDIATE" if conn.get_execution_options().get("baton_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class WriterQueue:
    """One write transaction at a time in this process; urgent writers go first. Re-entrant
    per thread. Writers wait here holding no connection.

    SQLite has one writer at a time anyway: without this queue each waiting writer would
    hold one of the pool's connections while SQLite's busy handler sleeps it (up to 100 ms
    a time), and the pool ran dry. PostgreSQL would let them all run, but in one process
    they only take turns at the interpreter lock: every statement is a round trip that
    hands the interpreter to another thread, and with the eight run workers writing side by
    side, each round trip of a Slack request waited behind them to get it back (a click's
    answer took ten times as long as on SQLite, bench/click_ack.py). Other processes
    (replicas) still write side by side with this one.

    With `urgent_waits=False` (PostgreSQL) an urgent writer does not wait for the writer
    in progress, only keeps the next one from starting: storing a Slack request needs no
    row another transaction may hold, so a writer stuck on a row lock (another replica's
    transaction that hangs) does not hold up the answers to Slack."""

    def __init__(self, *, urgent_waits: bool = True) -> None:
        self.urgent_waits = urgent_waits
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        # Urgent writers in progress without the turn (PostgreSQL), by thread: how deep each is
        self._bypassing: collections.Counter[int] = collections.Counter()
        # Writers waiting for their turn, in order, each on a lock of its own: the writer
        # that ends hands the turn to the next one and wakes only that thread (a condition
        # variable woke every waiting thread at every turn: a quarter of the server's profile
        # samples under 50 clickers were threads going back to sleep).
        self._waiting: collections.deque[tuple[int, threading.Lock]] = collections.deque()
        self._waiting_urgent: collections.deque[tuple[int, threading.Lock]] = collections.deque()

    @contextlib.contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        me = threading.get_ident()
        # A write inside a bypassing one (urgent or not) bypasses too: it would otherwise
        # wait for that very writer to end.
        if (urgent and not self.urgent_waits and self._owner != me) or me in self._bypassing:
            with self._lock:
                self._bypassing[me] += 1
            try:
                yield
            finally:
                with self._lock:
                    self._bypassing[me] -= 1
                    if not self._bypassing[me]:
                        del self._bypassing[me]
                    if self._owner is None:
                        self._hand_on()
            return
        turn: threading.Lock | None = None
        with self._lock:
            if self._owner == me:
                self._depth += 1
            elif self._owner is None and not self._waiting_urgent and (
                    urgent or not (self._waiting or self._bypassing)):
                self._owner, self._depth = me, 1
            else:
                turn = threading.Lock()
                turn.acquire()
                (self._waiting_urgent if urgent else self._waiting).append((me, turn))
        if turn is not None:
            turn.acquire()  # released by the writer before this one, which made it the owner
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._hand_on()

    def _hand_on(self) -> None:
        """Give the free turn to the next waiting writer, urgent ones first (under `_lock`)."""
        if self._waiting_urgent:
            waiting = self._waiting_urgent
        elif self._waiting and not self._bypassing:
            waiting = self._waiting
        else:
            return
        self._owner, turn = waiting.popleft()
        self._depth = 1
        turn.release()


class Database:
    """Sessions over one engine: `read()` for queries, `write()` for changes."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._write_engine = self.engine.execution_options(baton_write=True)
        self._local = threading.local()
        self._writer = WriterQueue(urgent_waits=self.is_sqlite)
        # SQLite: this process's writers take turns (`WriterQueue`), so the driver connection
        # one of them used is kept for the next rather than checked in to the pool and out
        # again (its events and reset cost as much as a small transaction's own Python).
        # PostgreSQL's go back to the pool, which pings one that sat idle (`_ping_when_idle`).
        self._spare: list[PoolProxiedConnection] | None = [] if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self, *, urgent: bool = False) -> Iterator[Session]:
        """One write transaction; commits on success, rolls back on error.

        Callbacks registered with `after_commit(session, fn)` run after the commit,
        outside the transaction, in registration order. An `urgent` write (one a Slack
        request waits on before it can be answered) goes before this process's other
        waiting writers.
        """
        with self._writer.hold(urgent), WriteSession(self._write_engine, expire_on_commit=False) as session:
            session.info["after_commit"] = []
            with session.begin():
                yield session
            callbacks: list[Callable[[], None]] = session.info.pop("after_commit")
        for callback in callbacks:
            callback()

    @contextmanager
    def writer(self, *, urgent: bool = False) -> Iterator[Writer]:
        """One write transaction on a driver connection of the pool (`storage.writer.Writer`):
        commits on success, rolls back on error; the callbacks it was given run after the
        commit, in order. Takes its turn as `write()` does."""
        spare = self._spare
        with self._writer.hold(urgent):
            connection = spare.pop() if spare else self.engine.raw_connection()
            writer = Writer(connection, self._write_engine)
            with writer.transaction(keep=None if spare is None else spare.append):
                yield writer
        for callback in writer.committed():
            callback()

    def ping(self) -> None:
        """Have the database answer a trivial query on a new checkout; raises what the
        driver raises when it cannot (the health check's question)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        while self._spare:
            self._spare.pop().close()
        self.engine.dispose()


def after_commit(session: Session | Writer, callback: Callable[[], None]) -> None:
    """Run `callback` once the write transaction of `session` (or a Writer) has committed."""
    if isinstance(session, Writer):
        session.after_commit(callback)
        return
    session.info.setdefault("after_commit", []).append(callback)
