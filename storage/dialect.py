"""Where SQLite and PostgreSQL differ, in one place.

- Locking a row: PostgreSQL takes `SELECT ... FOR UPDATE`; a SQLite write transaction
  holds the database's only write lock since `BEGIN IMMEDIATE` (storage.engine), so it
  locks nothing more and a row it has read stays current.
- Taking a row unless another transaction holds it: PostgreSQL's `FOR UPDATE SKIP LOCKED`
  (the row is not returned while another worker has it); SQLite's single writer has it.
- Beginning a write transaction: SQLite's `BEGIN IMMEDIATE` takes the write lock at once,
  so a second writer waits at its BEGIN (busy timeout) rather than failing half way with
  "database is locked"; PostgreSQL's driver begins a transaction at the first statement.
- Inserting unless a unique value exists: `INSERT ... ON CONFLICT DO NOTHING`, spelled by
  each dialect's own `insert`.

Statements are built once per dialect and table and kept: building a statement and its
cache key costs more than SQLite running it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def begin_write(dialect_name: str) -> str | None:
    """The statement that begins a write transaction on the driver's connection, if any."""
    return "BEGIN IMMEDIATE" if dialect_name == SQLITE else None


def locks_rows(dialect_name: str) -> bool:
    """Whether reading a row to change it must lock it (SQLite's writer already holds all)."""
    return dialect_name != SQLITE


@cache
def by_id(table: sa.Table, dialect_name: str, *, lock: bool) -> Any:
    """Every column of the row with id `:row_id`, locked when `lock` and the dialect locks rows."""
    query = sa.select(table).where(table.c.id == sa.bindparam("row_id"))
    return query.with_for_update() if lock and locks_rows(dialect_name) else query


def for_update(query: sa.Select[Any], dialect_name: str) -> sa.Select[Any]:
    return query.with_for_update() if locks_rows(dialect_name) else query


def for_update_skip_locked(query: sa.Select[Any], dialect_name: str) -> sa.Select[Any]:
    return query.with_for_update(skip_locked=True) if locks_rows(dialect_name) else query


@cache
def insert_ignoring(table: sa.Table, dialect_name: str, unique: str) -> Any:
    """INSERT one row, nothing when a row with its `unique` value exists; returns the new id."""
    insert = postgresql.insert if dialect_name == POSTGRESQL else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=[unique]).returning(table.c.id)


@cache
def insert(table: sa.Table) -> sa.Insert:
    return table.insert()


@cache
def insert_returning_id(table: sa.Table) -> Any:
    return table.insert().returning(table.c.id)


@cache
def update_by_id(table: sa.Table) -> Any:
    """UPDATE the row with id `:row_id`; the columns set are the other parameters given."""
    return table.update().where(table.c.id == sa.bindparam("row_id"))
