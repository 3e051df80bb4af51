"""One write transaction on a driver connection: what the engine writes through.

A `Writer` (from `Database.writer()`) runs its statements, compiled once per dialect with
SQLAlchemy Core (`storage.compiled`), on the DB-API connection it checked out of the
engine's pool, and begins, commits and rolls back there: SQLAlchemy's `Connection` (its
transaction objects, events, result wrappers) costs more Python per transaction than
SQLite takes to commit. A `Connection` over the same driver connection is made only for a
statement that cannot be compiled once (an expanding `IN`), in the same transaction.

It holds:

- the records it has loaded or inserted, one per row (read twice, a row is the same
  record), each with a snapshot of its columns. At flush the columns that differ from the
  snapshot are UPDATEd, one statement per changed record; a record nobody changed costs
  nothing. This is all the unit of work Baton needs: no relationships, no cascades.
- queued rows (trace entries, events, signals, step executions: only ever inserted, and
  nothing in the transaction refers to them by id), inserted with one executemany per
  table at flush.
- callbacks to run once the transaction has committed (`after_commit`).

Flush happens before every statement that may read what is pending (`execute`), before a
savepoint, and at commit. `read` runs a statement without flushing, for rows this
transaction never queues (the halt switch, a flow version).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from operator import attrgetter
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import PoolProxiedConnection

from storage import compiled, dialect, models, records
from storage.records import FIELDS

R = TypeVar("R")

# The SQLModel class of each record: its column defaults complete an inserted row.
MODELS: dict[type[Any], type[Any]] = {
    records.Run: models.Run, records.Gate: models.Gate, records.Decision: models.Decision,
    records.Action: models.Action, records.Timer: models.Timer,
    records.SystemState: models.SystemState, records.FlowVersion: models.FlowVersion,
}


# Each record's columns as one tuple, read at C speed (what flush compares to the snapshot).
_READERS: dict[type[Any], Any] = {record: attrgetter(*names) for record, names in FIELDS.items()}


class Writer:
    __slots__ = ("_callbacks", "_conn", "_connection", "_cursor", "_dialect", "_engine", "_known",
                 "_queued", "_savepoints", "_statements", "dialect_name", "events")

    def __init__(self, connection: PoolProxiedConnection, engine: Engine,
                 conn: Connection | None = None) -> None:
        self._connection = connection  # checked out of `engine`'s pool; returned at the end
        self._engine = engine
        self._dialect = engine.dialect
        self._statements = compiled.statements(engine.dialect)
        self._cursor = connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # made for a statement compiled per execution; or the SQLAlchemy Connection already
        # around `connection`, of an ORM session whose transaction this writer works in
        self._conn: Connection | None = conn
        self._savepoints = 0
        self.dialect_name: str = engine.dialect.name
        self._queued: dict[sa.Table, list[dict[str, Any]]] = {}
        # (record class, id) -> [record, snapshot of its columns as last written or read]
        self._known: dict[tuple[type[Any], int], list[Any]] = {}
        self._callbacks: list[Callable[[], None]] = []
        self.events: list[Any] = []  # published in-process after commit (orchestrator.events)

    @property
    def sqlite(self) -> bool:
        return self.dialect_name == dialect.SQLITE

    @property
    def conn(self) -> Connection:
        """A SQLAlchemy `Connection` on this transaction's driver connection (made on first
        use), for a statement `storage.compiled` cannot compile once."""
        if self._conn is None:
            self._conn = Connection(self._engine, connection=self._connection)
        return self._conn

    # -- statements ---------------------------------------------------------------------
    def execute(self, statement: Any, params: Mapping[str, Any] | list[Any] | None = None) -> Any:
        """Run `statement` after writing everything pending (it may read it)."""
        self.flush()
        return compiled.execute(self, self._cursor, statement, params)

    def read(self, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Run `statement` without writing what is pending first: only for rows this
        transaction does not queue or change."""
        return compiled.execute(self, self._cursor, statement, params)

    # -- records ------------------------------------------------------------------------
    def load(self, record: type[R], row: Any) -> R:
        """The record of `row` (every column of the table, in order): the one this
        transaction already holds for that id, else a new one it now tracks."""
        key = (record, row[0])
        known = self._known.get(key)
        if known is not None:
            return known[0]  # type: ignore[no-any-return]
        values = tuple(row)
        found = record(*values)
        self._known[key] = [found, values]
        return found

    def known(self, record: type[R], row_id: int) -> R | None:
        held = self._known.get((record, row_id))
        return None if held is None else held[0]  # type: ignore[no-any-return]

    def get(self, record: type[R], row_id: int | None, *, lock: bool = False) -> R | None:
        """The record with `row_id`, locked for the rest of the transaction when `lock`
        (PostgreSQL: FOR UPDATE, read again if already held; SQLite: the transaction holds
        the only write lock, so a record already held is current)."""
        if row_id is None:
            return None
        known = self._known.get((record, row_id))
        if known is not None and not (lock and not self.sqlite):
            return known[0]  # type: ignore[no-any-return]
        table: sa.Table = record.table  # type: ignore[attr-defined]
        statement = dialect.by_id(table, self.dialect_name, lock=lock)
        row = (self.execute if known is not None else self.read)(
            statement, {"row_id": row_id}).first()
        if row is None:
            return None
        if known is not None:  # read again under the lock: what the row holds now
            values = tuple(row)
            for name, value in zip(FIELDS[record], values, strict=True):
                setattr(known[0], name, value)
            known[1] = values
            return known[0]  # type: ignore[no-any-return]
        return self.load(record, row)

    def insert(self, record: type[R], values: dict[str, Any]) -> R:
        """INSERT a row now (`values` completed with the table's defaults) and return its
        record, with its new id."""
        from storage.rows import complete

        row = complete(MODELS[record], values)
        table: sa.Table = record.table  # type: ignore[attr-defined]
        row_id = self.read(dialect.insert_returning_id(table), row).scalar_one()
        return self._track_new(record, row_id, row)

    def insert_once(self, record: type[R], values: dict[str, Any], *, unique: str) -> R | None:
        """INSERT a row unless one with the same `unique` value exists (one statement);
        its record, or None when the row existed."""
        from storage.rows import complete

        row = complete(MODELS[record], values)
        table: sa.Table = record.table  # type: ignore[attr-defined]
        row_id = self.read(dialect.insert_ignoring(table, self.dialect_name, unique),
                           row).scalar_one_or_none()
        return None if row_id is None else self._track_new(record, row_id, row)

    def _track_new(self, record: type[R], row_id: int, row: dict[str, Any]) -> R:
        values = tuple(row_id if name == "id" else row[name] for name in FIELDS[record])
        found = record(*values)
        self._known[(record, row_id)] = [found, values]
        return found

    def queue(self, table: sa.Table, row: dict[str, Any]) -> None:
        """Insert `row` (complete: every row of a table names the same columns) at flush."""
        batch = self._queued.get(table)
        if batch is None:
            self._queued[table] = [row]
        else:
            batch.append(row)

    def flush(self) -> None:
        """Insert the queued rows, one executemany per table, then UPDATE what changed."""
        if self._queued:
            queued, self._queued = self._queued, {}
            for table, batch in queued.items():
                self.read(dialect.insert(table), batch)
        for key, held in self._known.items():
            found, before = held
            now = _READERS[key[0]](found)
            if now == before:  # compares the same objects first: cheap when nothing changed
                continue
            changed = {name: value for name, value, old
                       in zip(FIELDS[key[0]], now, before, strict=True)
                       if value is not old and value != old}
            if changed:
                changed["row_id"] = key[1]
                self.read(dialect.update_by_id(key[0].table), changed)
            held[1] = now

    # -- transaction --------------------------------------------------------------------
    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        self._callbacks.append(callback)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: if the block raises, the rows it wrote, the records it
        changed, the callbacks and events it added are all undone, and the error goes on."""
        self.flush()
        before = {key: (held[0], held[1]) for key, held in self._known.items()}
        callbacks, events = len(self._callbacks), len(self.events)
        self._savepoints += 1
        savepoint = f"baton_{self._savepoints}"
        self._driver(f"SAVEPOINT {savepoint}")
        try:
            yield
            self.flush()
        except BaseException:
            self._driver(f"ROLLBACK TO SAVEPOINT {savepoint}")
            self._queued = {}
            for key in list(self._known):
                if key not in before:
                    del self._known[key]  # read or made inside: read again if needed
            for key, (found, values) in before.items():
                for name, value in zip(FIELDS[key[0]], values, strict=True):
                    setattr(found, name, value)
                self._known[key] = [found, values]
            del self._callbacks[callbacks:]
            del self.events[events:]
            raise
        self._driver(f"RELEASE SAVEPOINT {savepoint}")

    @contextmanager
    def transaction(self, keep: Callable[[PoolProxiedConnection], None] | None = None
                    ) -> Iterator[None]:
        """Begin (SQLite: BEGIN IMMEDIATE, `storage.dialect`), run the block, write what is
        pending and commit; roll back if anything raises. Then the driver connection is
        handed to `keep` (for the next writer) or goes back to the pool; one that a
        `Connection` was made on goes back to the pool, and one that cannot even roll back
        is discarded."""
        connection = self._connection
        ended = False  # committed or rolled back: nothing of this transaction left on it
        try:
            begin = dialect.begin_write(self.dialect_name)
            if begin is not None:
                self._driver(begin)
            try:
                yield
                self.flush()
            except BaseException:
                ended = self._roll_back()
                raise
            try:
                connection.dbapi_connection.commit()  # type: ignore[union-attr]
            except self._dialect.loaded_dbapi.Error as exc:
                ended = self._roll_back()
                raise sa.exc.DBAPIError.instance("COMMIT", None, exc, self._dialect.loaded_dbapi.Error,
                                                 dialect=self._dialect) from exc
            ended = True
        finally:
            if self._conn is not None:
                self._conn.close()  # its own transaction ends with nothing left to do
            elif keep is not None and ended and connection.is_valid:
                keep(connection)
            else:
                connection.close()

    def _roll_back(self) -> bool:
        """Roll back; False (and the connection discarded) when even that fails."""
        try:
            self._connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        except Exception:
            self._connection.invalidate()  # a connection that cannot roll back is not reused
            return False
        return True

    def _driver(self, sql: str) -> None:
        """A statement of the transaction itself (BEGIN, SAVEPOINT), on the driver's cursor;
        an error raised as SQLAlchemy raises it."""
        try:
            self._cursor.execute(sql)
        except self._dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, self._dialect.loaded_dbapi.Error,
                                             dialect=self._dialect) from exc

    def committed(self) -> list[Callable[[], None]]:
        return self._callbacks
