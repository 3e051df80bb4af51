"""The writer binds and reads SQLite values on quick paths (storage/compiled.py): each must
give exactly what SQLAlchemy's and SQLModel's own processors give for the same column."""

from datetime import UTC, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.compiled import _quick_bind, _quick_result
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
