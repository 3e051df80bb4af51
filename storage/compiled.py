"""Statements compiled once per dialect and run on the driver's own cursor.

SQLAlchemy's `Connection.execute` spends about 40 us of Python per statement (its cache
key, an execution context, events, a result object) around the 2-10 us SQLite takes. A
write transaction runs 8 to 20 of them. So the statements the engine runs are compiled
once per dialect (and per set of columns, for an INSERT or UPDATE) with SQLAlchemy's own
compiler, and executed on the DB-API cursor of the write transaction's connection
(`storage.writer.Writer`), with the column types' own bind and result processors: the
values stored and read back are the ones `Connection.execute` stores and reads.

What SQLAlchemy does not do on this path: run `before_cursor_execute` and similar events,
and invalidate a connection that dropped (the writer does when its rollback fails, and the
pool when its reset does).
A driver error is raised as SQLAlchemy raises it (`sqlalchemy.exc.IntegrityError`, ...).
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.crud import REQUIRED as _REQUIRED
from sqlmodel.sql.sqltypes import UTCDateTime


class Compiled:
    """One statement as one dialect runs it, with how to pass its parameters and read its rows."""

    __slots__ = ("_by_position", "_dialect", "_from_given", "_ordered", "_types", "bind_processors",
                 "defaults", "names", "positional", "result_processors", "row", "sql")

    def __init__(self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys or ()) or None)
        if "POSTCOMPILE" in compiled.string:  # expanding IN (...): rendered per execution
            raise NotImplementedError(f"not precompilable: {compiled.string[:80]}")
        self.sql: str = compiled.string
        # the values of the statement's own literals and bind parameters' defaults
        self.defaults: dict[str, Any] = dict(compiled.construct_params(_check=False))
        self.positional = compiled.positiontup is not None
        self.names: tuple[str, ...] = tuple(compiled.positiontup or self.defaults)
        # the positional parameters in order, read at C speed (a 1-tuple for one name)
        self._ordered = (itemgetter(*self.names) if len(self.names) > 1 else
                         (lambda values, name=self.names[0]: (values[name],)) if self.names else
                         (lambda values: ()))
        self.bind_processors: tuple[tuple[str, Any], ...] = tuple(
            (name, _quick_bind(compiled.binds.get(name), dialect, proc))
            for name, proc in compiled._bind_processors.items() if proc is not None)
        # When no parameter has a value of its own (an INSERT's or UPDATE's columns, a row's
        # id), they are read from the caller's mapping in order and each processed in its
        # place, without first merging them into a copy of the defaults.
        self._from_given = self.positional and bool(self.names) and all(
            value is _REQUIRED or value is None for value in self.defaults.values())
        processors = dict(self.bind_processors)
        self._by_position: tuple[tuple[int, Any], ...] = tuple(
            (index, processors[name]) for index, name in enumerate(self.names) if name in processors)
        columns = compiled._result_columns
        self._types = [column.type for column in columns]
        self._dialect = dialect
        # known at the first execution: PostgreSQL's processors depend on the driver's type
        # of each column (its cursor.description)
        self.result_processors: tuple[tuple[int, Any], ...] | None = None
        self.row = namedtuple("Row", [c.keyname for c in columns], rename=True) if columns else None  # type: ignore[misc]

    def parameters(self, given: Mapping[str, Any]) -> Any:
        if self._from_given:
            try:
                ordered = self._ordered(given)
            except KeyError:
                pass  # a parameter left out: passed on as SQLAlchemy would (below)
            else:
                if not self._by_position:
                    return ordered
                found = list(ordered)
                for index, process in self._by_position:
                    found[index] = process(found[index])
                return found
        values = {**self.defaults, **given} if self.defaults else dict(given)
        for name, process in self.bind_processors:
            if name in values:
                values[name] = process(values[name])
        if self.positional:
            return self._ordered(values)
        return values

    def rows(self, found: list[Any], description: Any) -> list[Any]:
        make = self.row
        if make is None:
            return found
        processors = self.result_processors
        if processors is None:
            processors = self.result_processors = tuple(
                (index, process) for index, (kind, column) in
                enumerate(zip(self._types, description, strict=True))
                if (process := _quick_result(kind, self._dialect,
                                             kind._cached_result_processor(self._dialect, column[1])))
                is not None)
        if not processors:
            return [make._make(row) for row in found]
        out = []
        for row in found:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            out.append(make._make(values))
        return out


_DECODER = json.JSONDecoder()
_decode_json = _DECODER.decode
_scan = _DECODER.scan_once  # the C scanner (json.scanner.c_make_scanner)


def _quick_result(kind: Any, dialect: Dialect, process: Any) -> Any:
    """SQLite's JSON text decoded as SQLAlchemy's processor decodes it (`json.loads`), without
    its two wrappers around each value (a run read has five JSON columns, a gate nine, most
    of them `{}` or `[]`); a UTC time's text as SQLAlchemy's and SQLModel's processors read
    it (`datetime.fromisoformat`, then UTC attached); anything else still goes through
    SQLAlchemy's."""
    if process is None or dialect.name != "sqlite":
        return process
    if isinstance(kind, UTCDateTime):
        return _utc_time_result(process)
    if not isinstance(kind, sa.JSON):
        return process

    def decode(value: Any) -> Any:
        if value.__class__ is str:
            return {} if value == "{}" else [] if value == "[]" else _json_value(value)
        return process(value)

    return decode


def _json_value(text: str) -> Any:
    """`json.loads(text)`, by the decoder's C scanner itself when the text is one value with
    nothing around it (as Baton writes it); else by `decode`, which skips whitespace around
    the value and raises what `json.loads` raises."""
    try:
        found, end = _scan(text, 0)
    except StopIteration:
        return _decode_json(text)
    return found if end == len(text) else _decode_json(text)


def _utc_time_result(process: Any) -> Any:
    def decode(value: Any) -> Any:
        if value.__class__ is str:
            return _from_iso(value).replace(tzinfo=UTC)
        return process(value)  # None

    return decode


_from_iso = datetime.fromisoformat


# A transaction stamps most of its rows and columns with the same time (`Tx.now`): the text
# of the last time encoded is kept with it, for every statement's time columns, replaced as
# one tuple (the threads of a process share it).
_LAST_TIME: list[tuple[Any, Any]] = [(None, None)]


def _quick_bind(bind: Any, dialect: Dialect, process: Any) -> Any:
    """A UTC datetime with microseconds (the clock's) stored as SQLModel's and SQLAlchemy's
    SQLite processors store it (`2026-12-04 20:31:56.123456`, in UTC), by the C `isoformat`;
    a dict or list by the engine's JSON serializer (`storage.engine.store_json`) without
    SQLAlchemy's wrapper around it; any other value through them."""
    if dialect.name != "sqlite" or bind is None:
        return process
    if isinstance(bind.type, sa.JSON) and process is not None:
        return _json_bind(process, dialect._json_serializer)  # type: ignore[attr-defined]
    if not isinstance(bind.type, UTCDateTime):
        return process

    last = _LAST_TIME

    def encode(value: Any) -> Any:
        seen = last[0]
        if value is seen[0]:
            return seen[1]
        if value.__class__ is datetime and value.tzinfo is UTC and value.microsecond:
            text = value.isoformat(" ")[:26]  # without its "+00:00"
            last[0] = (value, text)
            return text
        if value is None:
            return None  # what the processors make of it
        return process(value)

    return encode


def _json_bind(process: Any, serialize: Any) -> Any:
    if serialize is None:
        return process

    def encode(value: Any) -> Any:
        if value.__class__ in _CONTAINERS:
            return serialize(value)
        return process(value)  # None, a JSON null, a scalar

    return encode


_CONTAINERS = frozenset((dict, list))


class Result:
    """The rows a statement returned, read as a SQLAlchemy result is read."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound("expected one row") if not self._rows else \
                sa.exc.MultipleResultsFound("expected one row")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class Statements:
    """The compiled statements of one dialect, built on first use and kept."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[Any, Compiled | None] = {}

    def get(self, statement: Any, column_keys: Sequence[str] | None = None) -> Compiled | None:
        key = (statement, tuple(column_keys)) if column_keys else statement
        found = self._compiled.get(key, False)
        if found is False:
            try:
                found = Compiled(statement, self.dialect, column_keys)
            except NotImplementedError:
                found = None  # run through SQLAlchemy
            self._compiled[key] = found
        return found  # type: ignore[return-value]


_BY_DIALECT: dict[str, Statements] = {}


def statements(dialect: Dialect) -> Statements:
    found = _BY_DIALECT.get(dialect.name)
    if found is None:
        found = _BY_DIALECT[dialect.name] = Statements(dialect)
    return found


def execute(writer: Any, cursor: Any, statement: Any,
            params: Mapping[str, Any] | list[Mapping[str, Any]] | None) -> Any:
    """Run `statement` with `params` (a list: executemany) on `cursor`, the driver cursor of
    `writer`'s transaction (`storage.writer.Writer`); a statement that cannot be compiled
    once runs through `writer.conn`, SQLAlchemy's Connection on the same connection."""
    dialect: Dialect = writer._dialect
    many = isinstance(params, list)
    first: Mapping[str, Any] = (params[0] if many else params) or {}  # type: ignore[index]
    keys = tuple(first) if isinstance(statement, (sa.Insert, sa.Update)) else None
    compiled = writer._statements.get(statement, keys)
    if compiled is None:
        return writer.conn.execute(statement, params)
    try:
        if many:
            cursor.executemany(compiled.sql, [compiled.parameters(p) for p in params])  # type: ignore[union-attr]
            return Result([], cursor.rowcount)
        cursor.execute(compiled.sql, compiled.parameters(first))
        if compiled.row is None:  # no result columns: an INSERT or UPDATE without RETURNING
            return Result(cursor.fetchall() if cursor.description is not None else [],
                          cursor.rowcount)
        found = cursor.fetchall()
        # The driver describes the columns anew at every access (a tuple per column): read
        # only for the first execution, whose result processors are built from it.
        description = cursor.description if compiled.result_processors is None else None
    except dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(compiled.sql, params, exc, dialect.loaded_dbapi.Error,
                                         dialect=dialect) from exc
    return Result(compiled.rows(found, description), cursor.rowcount)
