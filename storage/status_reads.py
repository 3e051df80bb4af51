"""What `baton status` reads, through the DB-API driver alone (sqlite3, or psycopg for
PostgreSQL): no SQLAlchemy, no models. The statements' text is storage/status_sql.json,
generated from the Core statements in storage/status_queries.py; the values read are the
ones SQLAlchemy reads (JSON decoded, datetimes aware in UTC, booleans as bool), in rows whose
fields are the columns' names.

`StatusReader.open` answers None where it cannot read the way the engine would: a URL it
does not take apart exactly as SQLAlchemy does, a database that is missing or cannot be
reached, a schema at another revision than the statements'. The caller then opens the
engine, which creates or migrates the schema, or fails, as it always has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from storage.unreachable import DatabaseUnreachable

_GENERATED = json.loads(Path(__file__).with_name("status_sql.json").read_text(encoding="utf-8"))
HEAD: str = _GENERATED["head"]
STATEMENTS: dict[str, dict[str, dict[str, Any]]] = _GENERATED["statements"]
SQLITE_BUSY_TIMEOUT_MS = 30_000  # storage.engine's (tests/storage/test_status_reads.py keeps them equal)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _naive(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


# How each kind of column is read (storage.status_queries names the kinds). psycopg decodes
# JSON and booleans itself; SQLite hands back text and integers.
_DECODE: dict[str, Callable[[Any], Any]] = {"json": _json, "datetime": _naive,
                                            "utc_datetime": _utc, "bool": _bool}


def _sqlite_path(rest: str) -> str | None:
    """The file of `sqlite:///PATH` as SQLAlchemy opens it; None for anything else (memory,
    URI filenames, query options, a host)."""
    if not rest.startswith("/") or "?" in rest or "#" in rest:
        return None
    path = unquote(rest[1:])
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def _postgresql_args(rest: str) -> dict[str, Any] | None:
    """psycopg's connect arguments for `postgresql+psycopg://user:password@host:port/db`, as
    SQLAlchemy's psycopg dialect gives them; None for query options, several hosts, a socket."""
    if "?" in rest or "#" in rest:
        return None
    netloc, _, database = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        userinfo, hostport = "", netloc
    if "," in hostport or "[" in hostport or not hostport:
        return None
    host, colon, port = hostport.partition(":")
    args: dict[str, Any] = {"host": host}
    if colon:
        if not port.isdigit():
            return None
        args["port"] = int(port)
    user, _, password = userinfo.partition(":")
    given = {"dbname": unquote(database), "user": unquote(user), "password": unquote(password)}
    return args | {name: value for name, value in given.items() if value}  # empty: not given


class Row(tuple):  # type: ignore[type-arg]
    """A row read, its columns by name as attributes (`row.status`), as SQLAlchemy's rows read.
    Not a namedtuple: building one compiles its constructor, ms per table of 30 columns."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def of(cls, columns: tuple[str, ...]) -> type[Row]:
        return type("Row", (cls,), {"__slots__": (), "_fields": columns,
                                    "_index": {name: i for i, name in enumerate(columns)}})


class StatusReader:
    """One read transaction on one DB-API connection, for one `baton status`."""

    def __init__(self, dialect: str, connection: Any) -> None:
        self._statements = STATEMENTS[dialect]
        self._connection = connection
        self._rows: dict[str, Any] = {}

    @classmethod
    def open(cls, url: str) -> StatusReader | None:
        scheme, sep, rest = url.partition("://")
        if not sep:
            return None
        try:
            if scheme in ("sqlite", "sqlite+pysqlite"):
                path = _sqlite_path(rest)
                if path is None or not os.path.isfile(path):
                    return None  # the engine creates it, and its schema
                import sqlite3

                connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                                             isolation_level=None)
                connection.execute("BEGIN")  # one snapshot for every statement
                reader = cls("sqlite", connection)
            elif scheme == "postgresql+psycopg":
                args = _postgresql_args(rest)
                if args is None:
                    return None
                import psycopg

                try:
                    connection = psycopg.connect(**args)
                except psycopg.OperationalError as exc:  # the engine could not either
                    raise DatabaseUnreachable(url, exc) from exc
                # one snapshot for every statement
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
                reader = cls("postgresql", connection)
            else:
                return None
        except DatabaseUnreachable:
            raise
        except Exception:  # not a database, or a driver missing: the engine says so
            return None
        try:
            revision = reader._first("schema_revision")
        except Exception:  # no alembic_version table: never migrated
            revision = None
        if revision is None or revision[0] != HEAD:
            reader.close()
            return None
        return reader

    def close(self) -> None:
        try:
            self._connection.rollback()
        finally:
            self._connection.close()

    def __enter__(self) -> StatusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what `baton status` asks ----------------------------------------------------------
    def run(self, run_id: int) -> Any | None:
        return self._first("run", run=run_id)

    def open_runs(self) -> list[Any]:
        return self._all("open_runs")

    def open_gates(self, run_id: int | None = None) -> list[Any]:
        """Open gates, oldest first: all of them, or one run's."""
        if run_id is None:
            return self._all("open_gates")
        return self._all("open_gates_of_run", run=run_id)

    def open_gates_with_requester(self) -> list[tuple[Any, str]]:
        """Every open gate with the requester of its run, oldest first."""
        return [(row, row.run_requester) for row in self._all("open_gates_with_requester")]

    def failed_slack_calls(self, run_id: int | None = None) -> tuple[int, list[Any]]:
        """How many Slack calls failed for good (of one run, with `run_id`), and the latest."""
        if run_id is None:
            return self._first("failed_calls")[0], self._all("latest_failed_calls")
        return (self._first("failed_calls_of_run", run=run_id)[0],
                self._all("latest_failed_calls_of_run", run=run_id))

    # -- running a statement ------------------------------------------------------------------
    def _all(self, name: str, **given: Any) -> list[Any]:
        statement = self._statements[name]
        values = {**statement["fixed"], **given}
        parameters = tuple(values[n] for n in statement["names"]) if statement["positional"] \
            else values
        cursor = self._connection.execute(statement["sql"], parameters)
        found = cursor.fetchall()
        make = self._rows.get(name)
        if make is None:
            columns = statement["columns"]
            make = self._rows[name] = Row.of(tuple(c for c, _ in columns))
        decoders = [(i, _DECODE[kind]) for i, (_, kind) in enumerate(statement["columns"]) if kind]
        rows = []
        for row in found:
            values_read = list(row)
            for index, decode in decoders:
                values_read[index] = decode(values_read[index])
            rows.append(make(values_read))
        return rows

    def _first(self, name: str, **given: Any) -> Any | None:
        found = self._all(name, **given)
        return found[0] if found else None
