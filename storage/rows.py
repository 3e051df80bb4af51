"""Append-only rows, written in bulk.

Trace entries, signals and step executions are only ever inserted, and nothing in the
transaction that adds them refers to them by id. Building each as an ORM object and
flushing it through the unit of work costs about a third of a millisecond of Python per
row, more than SQLite takes to store it. A write transaction queues them as plain rows
instead, and inserts each table's rows with one executemany:

- before the session runs its next ORM query (so the transaction reads its own rows, as
  it would read flushed objects),
- before a savepoint starts (so a rolled-back savepoint drops exactly its own rows),
- before commit.

Use `savepoint(session)` rather than `session.begin_nested()` in a transaction that may
have queued rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel

_QUEUE = "baton_rows"
M = TypeVar("M", bound=SQLModel)


class WriteSession(Session):
    """The session of `Database.write()`: it writes queued rows before it reads or commits."""

    def add(self, instance: object, *args: Any, **kwargs: Any) -> None:
        # The engine adds the run after each change, as SQLModel code does. For an object
        # already in the session that only walks cascades, which Baton's models (no
        # relationships) do not have, and costs about 30 us each time.
        if instance in self:
            return
        super().add(instance, *args, **kwargs)


@cache
def _defaults(model: type[SQLModel]) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
    """The model's column defaults (fixed values, factories) and the columns it requires."""
    fixed: dict[str, Any] = {}
    factories: dict[str, Any] = {}
    required: set[str] = set()
    for name, field in model.model_fields.items():
        if name == "id":
            continue
        if field.default_factory is not None:
            factories[name] = field.default_factory
        elif field.is_required():
            required.add(name)
        else:
            fixed[name] = field.default
    return fixed, factories, frozenset(required)


def complete(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """A row of `model` for a plain INSERT: `values`, and the model's defaults for the columns
    they leave out (a plain INSERT does not apply them, and the rows of one executemany must
    name the same columns)."""
    fixed, factories, required = _defaults(model)
    missing = required - values.keys()
    if missing:
        raise TypeError(f"a {model.__name__} row needs {', '.join(sorted(missing))}")
    return {**fixed, **{k: make() for k, make in factories.items() if k not in values}, **values}


def insert_new(session: Session, model: type[SQLModel], values: dict[str, Any], *,
               unique: str) -> int | None:
    """INSERT a row of `model` unless one with the same value of the `unique` column exists
    (one statement: ON CONFLICT DO NOTHING); the new row's id, or None when it existed."""
    connection = session.connection()
    statement = _insert_new(model.__table__, connection.dialect.name, unique)  # type: ignore[attr-defined]
    return connection.execute(statement, complete(model, values)).scalar_one_or_none()


def insert_now(session: Session, model: type[M], values: dict[str, Any]) -> M:
    """INSERT a row of `model` (`values`, completed with its defaults) at once and return it
    attached to `session` as if just loaded, with its new id: what `session.add(obj);
    session.flush()` does when a row's id is needed before commit, with one plain
    statement. A flush would also write every other change pending in the session (the
    run's own, which commit writes again) through the unit of work."""
    row = complete(model, values)
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    row["id"] = session.connection().execute(_insert_returning(table), row).scalar_one()
    return attach_loaded(session, model, row)


def attach_loaded(session: Session, model: type[M], row: Mapping[str, Any]) -> M:
    """An object of `model` holding `row` (every column), attached to `session` as a row it
    has loaded: unchanged, so only what is changed afterwards is written.

    This is what the ORM's own loading does (a new instance, its attribute dict filled in).
    Calling the model's constructor instead sets each column through pydantic's and the
    ORM's attribute events: about 0.15 ms for a run, more than the INSERT."""
    obj: M = _manager(model).new_instance()
    obj.__dict__.update(row)
    make_transient_to_detached(obj)  # persistent once added, nothing pending
    session.add(obj)
    return obj


def load(session: Session, model: type[M], statement: sa.Select[Any],
         params: Mapping[str, Any]) -> list[M]:
    """The objects of `model` whose rows `statement` (a plain SELECT of the whole table's
    columns) returns, as `session.exec(select(model)...)` gives them: after the autoflush,
    and an object the session already holds is returned as it is. The ORM's loading
    costs about 0.1 ms of Python per query, as much as SQLite running it."""
    if session.autoflush:
        session.flush()
    write(session)
    held = session.identity_map
    found = []
    for row in session.connection().execute(statement, params).mappings():
        known = held.get(Session.identity_key(model, row["id"]))
        found.append(known if known is not None else attach_loaded(session, model, row))
    return found


@cache
def _manager(model: type[SQLModel]) -> Any:
    return sa.inspect(model).class_manager


# Statements are built once: building one and its cache key costs more than SQLite
# running it (about 0.1 ms against 0.04 ms here).
@cache
def _insert_new(table: sa.Table, dialect_name: str, unique: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return (dialect.insert(table).on_conflict_do_nothing(index_elements=[unique])
            .returning(table.c.id))


@cache
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert()


@cache
def _insert_returning(table: sa.Table) -> Any:
    return table.insert().returning(table.c.id)


def add(session: Session, model: type[SQLModel], values: dict[str, Any]) -> None:
    """Queue a row of `model` (`values`, completed with its defaults; no id)."""
    if not isinstance(session, WriteSession):  # anything else would never write it
        raise TypeError("rows are queued only in a Database.write() session")
    row = complete(model, values)
    session.info.setdefault(_QUEUE, []).append((model.__table__, row))  # type: ignore[attr-defined]


def write(session: Session) -> None:
    """Insert the queued rows now: one statement per table, in the order they were queued."""
    queued: list[tuple[sa.Table, dict[str, Any]]] | None = session.info.get(_QUEUE)
    if not queued:
        return
    session.info[_QUEUE] = []
    by_table: dict[sa.Table, list[dict[str, Any]]] = {}
    for table, row in queued:
        by_table.setdefault(table, []).append(row)
    connection = session.connection()  # not session.execute: no ORM events, no recursion
    for table, batch in by_table.items():
        connection.execute(_insert(table), batch)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """`session.begin_nested()` that also drops the rows queued inside it when it rolls back."""
    write(session)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        session.info[_QUEUE] = []
        raise


@event.listens_for(WriteSession, "do_orm_execute")
def _before_query(state: Any) -> None:
    write(state.session)


@event.listens_for(WriteSession, "before_commit")
def _before_commit(session: Session) -> None:
    write(session)
