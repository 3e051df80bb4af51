"""The writer binds and reads SQLite values on quick paths (storage/compiled.py): each must
give exactly what SQLAlchemy's and SQLModel's own processors give for the same column."""

from datetime import UTC, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.compiled import Compiled, _quick_bind, _quick_result
from storage.engine import store_json

DIALECT = sqlite.dialect(json_serializer=store_json)
TIME = UTCDateTime()
JSON = sa.JSON()

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


def _pair(kind: sa.types.TypeEngine, side: str):  # type: ignore[no-untyped-def]
    if side == "bind":
        own = kind._cached_bind_processor(DIALECT)
        return own, _quick_bind(SimpleNamespace(type=kind), DIALECT, own)
    own = kind._cached_result_processor(DIALECT, None)
    return own, _quick_result(kind, DIALECT, own)


@settings(max_examples=300, deadline=None)
@given(at=st.none() | st.datetimes(timezones=st.just(UTC)))
def test_a_utc_time_is_bound_and_read_back_as_sqlalchemy_does(at: datetime | None) -> None:
    own, quick = _pair(TIME, "bind")
    stored = own(at)
    assert quick(at) == stored
    own_read, quick_read = _pair(TIME, "result")
    read = quick_read(stored)
    assert read == own_read(stored) == at
    assert read is None or read.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_a_json_value_is_bound_and_read_back_as_sqlalchemy_does(value: object) -> None:
    own, quick = _pair(JSON, "bind")
    stored = own(value)
    assert quick(value) == stored
    own_read, quick_read = _pair(JSON, "result")
    assert quick_read(stored) == own_read(stored) == value


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.none() | st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=4))
def test_times_bound_in_turn_are_each_bound_as_sqlalchemy_does(times: list[datetime | None]) -> None:
    # the quick path keeps the text of the last time it bound, for every time column
    own, quick = _pair(TIME, "bind")
    other_own, other_quick = _pair(TIME, "bind")  # another column's
    for at in [*times, times[0], *reversed(times)]:
        assert quick(at) == own(at)
        assert other_quick(at) == other_own(at)


_TABLE = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("at", TIME), sa.Column("data", JSON), sa.Column("name", sa.String),
                  sa.Column("status", sa.String))
_STATEMENTS = {
    "insert": (_TABLE.insert(), ("at", "data", "name")),
    "update": (_TABLE.update().where(_TABLE.c.id == sa.bindparam("row_id")),
               ("at", "data", "name")),
    "select": (sa.select(_TABLE).where(_TABLE.c.id == sa.bindparam("row_id"),
                                       _TABLE.c.status == "open").limit(1), None),
}


@settings(max_examples=200, deadline=None)
@given(which=st.sampled_from(sorted(_STATEMENTS)),
       at=st.none() | st.datetimes(timezones=st.just(UTC)), data=_json,
       name=st.none() | st.text(max_size=5), row_id=st.integers(1, 10),
       left_out=st.sets(st.sampled_from(["at", "data", "name", "row_id"]), max_size=2))
def test_a_statement_is_given_the_parameters_sqlalchemy_gives_it(
        which: str, at: datetime | None, data: object, name: str | None, row_id: int,
        left_out: set[str]) -> None:
    statement, columns = _STATEMENTS[which]
    given = {k: v for k, v in {"at": at, "data": data, "name": name, "row_id": row_id}.items()
             if k not in left_out}
    keys = [k for k in columns if k in given] if columns is not None else None
    if keys == []:
        return
    reference = statement.compile(dialect=DIALECT, column_keys=keys)
    mine = Compiled(statement, DIALECT, keys)
    values = reference.construct_params({**given}, _check=False)
    for key, process in reference._bind_processors.items():
        if process is not None and key in values:
            values[key] = process(values[key])
    assert tuple(mine.parameters(given)) == tuple(values[k] for k in reference.positiontup)
