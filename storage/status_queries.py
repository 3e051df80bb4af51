"""The statements `baton status` runs, as Core statements over Baton's tables, and the module
that holds their text for each dialect (storage/status_sql.json), generated from them.

`baton status` reads through the DB-API driver alone (storage/status_reads.py): importing
SQLAlchemy and the models took longer than the rest of the command. So the text of each
statement is compiled here, once, by SQLAlchemy's own compiler (`storage.compiled`), and
written into a plain module; tests/storage/test_status_reads.py compiles them again and
fails when that module differs. After changing a statement, a table's columns or the schema's
head revision, write it again:

    python -m storage.status_queries
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.dialects.sqlite import pysqlite
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.compiled import Compiled
from storage.engine import Database
from storage.migrate import HEAD
from storage.models import Gate, Run, SlackOutbox
from storage.status_reads import StatusReader

RUNS: sa.Table = Run.__table__  # type: ignore[attr-defined]
GATES: sa.Table = Gate.__table__  # type: ignore[attr-defined]
CALLS: sa.Table = SlackOutbox.__table__  # type: ignore[attr-defined]
_VERSION = sa.table("alembic_version", sa.column("version_num"))
OPEN_STATUSES = ("running", "waiting", "held")
LATEST_FAILED = 3  # failed Slack calls shown

_FAILED = CALLS.c.status == "failed"
_OF_RUN = CALLS.c.run_id == sa.bindparam("run")

STATEMENTS: dict[str, Any] = {
    # which schema the database holds: the statements below are this revision's
    "schema_revision": sa.select(_VERSION.c.version_num),
    "run": sa.select(RUNS).where(RUNS.c.id == sa.bindparam("run")),
    # `in_` renders its list per execution; spelled out, the text is fixed
    "open_runs": sa.select(RUNS).where(sa.or_(*(RUNS.c.status == s for s in OPEN_STATUSES)))
                 .order_by(RUNS.c.id),
    "open_gates_of_run": sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run"),
                                                GATES.c.status == "open").order_by(GATES.c.id),
    "open_gates": sa.select(GATES).where(GATES.c.status == "open").order_by(GATES.c.id),
    "open_gates_with_requester": sa.select(GATES, RUNS.c.requester.label("run_requester"))
                                 .join(RUNS, GATES.c.run_id == RUNS.c.id)
                                 .where(GATES.c.status == "open").order_by(GATES.c.id),
    "failed_calls": sa.select(sa.func.count()).select_from(CALLS).where(_FAILED),
    "failed_calls_of_run": sa.select(sa.func.count()).select_from(CALLS).where(_FAILED, _OF_RUN),
    "latest_failed_calls": sa.select(CALLS).where(_FAILED).order_by(CALLS.c.id.desc())
                           .limit(LATEST_FAILED),
    "latest_failed_calls_of_run": sa.select(CALLS).where(_FAILED, _OF_RUN)
                                  .order_by(CALLS.c.id.desc()).limit(LATEST_FAILED),
}
DIALECTS: dict[str, sa.engine.Dialect] = {"sqlite": pysqlite.dialect(),
                                          "postgresql": psycopg.dialect()}
TARGET = Path(__file__).with_name("status_sql.json")


def _kind(column_type: sa.types.TypeEngine[Any]) -> str:
    """How status_reads turns the driver's value into the one SQLAlchemy reads: JSON text and
    SQLite's datetime text and 0/1 are decoded; anything else is read as the driver gives it."""
    if isinstance(column_type, UTCDateTime):  # sqlmodel's `datetime`: read as aware, in UTC
        return "utc_datetime"
    if isinstance(column_type, sa.types.TypeDecorator):  # sqlmodel's AutoString: a String
        if type(column_type).process_result_value is not sa.types.TypeDecorator.process_result_value:
            raise TypeError(f"{column_type!r} converts what it reads: status_reads cannot")
        column_type = column_type.impl_instance
    if isinstance(column_type, sa.JSON):
        return "json"
    if isinstance(column_type, sa.DateTime):
        return "datetime"
    if isinstance(column_type, sa.Boolean):
        return "bool"
    if isinstance(column_type, sa.Integer | sa.String | sa.Float | sa.Numeric | sa.types.NullType):
        return ""
    raise TypeError(f"status_reads does not read a {column_type!r} column: add its kind")


def compile_statement(statement: Any, dialect: sa.engine.Dialect) -> dict[str, Any]:
    """One statement as the generated module holds it: its text, its parameters' names (in
    order, for a positional paramstyle) and fixed values, and its columns' names and kinds."""
    compiled = Compiled(statement, dialect, None)
    if compiled.bind_processors:  # the values would need SQLAlchemy to be passed
        raise TypeError(f"a parameter of {compiled.sql!r} needs a bind processor")
    columns = statement.selected_columns
    return {"sql": compiled.sql, "names": compiled.names, "positional": compiled.positional,
            "fixed": {k: v for k, v in compiled.defaults.items() if v is not None},
            "columns": tuple((name, _kind(column.type))
                             for name, column in zip(compiled.row._fields, columns, strict=True))}


def generated_text() -> str:
    """storage/status_sql.json: the statements' text for each dialect, and the schema
    revision they were compiled for (data, read by status_reads without SQLAlchemy)."""
    statements = {dialect: {name: compile_statement(statement, built)
                            for name, statement in STATEMENTS.items()}
                  for dialect, built in DIALECTS.items()}
    return json.dumps({"generated_by": "python -m storage.status_queries (do not edit)",
                       "head": HEAD, "statements": statements}, indent=1) + "\n"


class EngineStatusReader(StatusReader):
    """The same reads, the same statements, through SQLAlchemy: for a database the engine
    opened (created or migrated) where `StatusReader.open` could not."""

    def __init__(self, db: Database) -> None:
        self._conn = db.engine.connect()
        self._conn.begin()  # one snapshot for every statement, as StatusReader reads

    def close(self) -> None:
        self._conn.close()  # rolls back

    def _all(self, name: str, **given: Any) -> list[Any]:
        return list(self._conn.execute(STATEMENTS[name], given))


def main() -> int:
    TARGET.write_text(generated_text(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
