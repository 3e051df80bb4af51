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

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, SQLModel

_QUEUE = "baton_rows"


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


# Statements are built once: building one and its cache key costs more than SQLite
# running it (about 0.1 ms against 0.04 ms here).
@cache
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert()


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
