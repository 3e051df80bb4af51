"""storage/status_reads.py: `baton status` reads through the DB-API driver alone, with the text
SQLAlchemy compiles for its statements (storage/status_sql.json, generated) and the values
SQLAlchemy reads; where it cannot read as the engine would, it says so (None)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.engine import Engine
from storage import engine as storage_engine
from storage import status_queries, status_reads
from storage.migrate import HEAD, ensure_schema
from storage.models import SlackOutbox
from storage.status_queries import EngineStatusReader
from storage.status_reads import StatusReader
from storage.unreachable import DatabaseUnreachable


def test_the_generated_statements_are_what_sqlalchemy_compiles_now() -> None:
    """After changing a statement, a column or the schema: `python -m storage.status_queries`."""
    assert status_queries.TARGET.read_text(encoding="utf-8") == status_queries.generated_text()
    from storage.status_reads import HEAD as COMPILED_FOR

    assert COMPILED_FOR == HEAD
    assert status_reads.SQLITE_BUSY_TIMEOUT_MS == storage_engine.SQLITE_BUSY_TIMEOUT_MS


def _rows(found: list) -> list[tuple]:
    return [(tuple(row._fields), tuple(row)) for row in found]


def test_it_reads_the_values_sqlalchemy_reads(engine: Engine, database_url: str) -> None:
    for amount in (20000, 12000.5, 21000, 15000):
        engine.start_run("vendor-payment", {"vendor": "ACME “Ltd” ✓", "amount": amount}, "alice")
    engine.claim("R-2", "bob")
    engine.snooze("R-3", "carol", timedelta(minutes=15))
    engine.decide("R-4", "bob", "approve", reason="ok")
    with engine.db.write() as s:
        s.add(SlackOutbox(run_id=1, lane="t", method="chat.update", status="failed",
                          last_error="boom", created_at=engine.clock.now(), sent_at=engine.clock.now()))
        s.add(SlackOutbox(run_id=None, lane="t", method="views.publish", status="failed",
                          created_at=engine.clock.now()))
    quick = StatusReader.open(database_url)
    assert quick is not None
    with quick, EngineStatusReader(engine.db) as through_sqlalchemy:
        for run_id in (1, 2, 3, 4, 99):
            one, other = quick.run(run_id), through_sqlalchemy.run(run_id)
            assert (one is None) == (other is None)
            if one is not None:
                assert _rows([one]) == _rows([other])
                assert isinstance(one.inputs, dict) and one.created_at.tzinfo is not None
            assert _rows(quick.open_gates(run_id)) == _rows(through_sqlalchemy.open_gates(run_id))
            one_failed = quick.failed_slack_calls(run_id)
            other_failed = through_sqlalchemy.failed_slack_calls(run_id)
            assert one_failed[0] == other_failed[0] and _rows(one_failed[1]) == _rows(other_failed[1])
        assert _rows(quick.open_runs()) == _rows(through_sqlalchemy.open_runs())
        assert len(quick.open_runs()) == 3
        assert _rows(quick.open_gates()) == _rows(through_sqlalchemy.open_gates())
        assert quick.open_gates()[0].forbid_requester in (True, False)
        pairs = quick.open_gates_with_requester()
        assert [(tuple(g), r) for g, r in pairs] == \
            [(tuple(g), r) for g, r in through_sqlalchemy.open_gates_with_requester()]
        assert {r for _, r in pairs} == {"alice"}
        assert quick.failed_slack_calls() == (2, quick.failed_slack_calls()[1])
        assert _rows(quick.failed_slack_calls()[1]) == _rows(through_sqlalchemy.failed_slack_calls()[1])


def test_it_leaves_to_the_engine_what_it_cannot_read_as_the_engine_would(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert StatusReader.open(f"sqlite:///{missing}") is None
    assert not missing.exists()  # nothing created: the engine creates and migrates it
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert StatusReader.open(f"sqlite:///{empty}") is None  # never migrated
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    assert StatusReader.open(f"sqlite:///{older}") is None  # to migrate
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert StatusReader.open(f"sqlite:///{garbage}") is None
    for url in ("sqlite://", "sqlite:///:memory:", f"sqlite:///{older}?mode=ro",
                f"sqlite:///file:{older}?uri=true", "sqlite://host/x.db", "nonsense",
                "postgresql://u@127.0.0.1:1/x",  # psycopg2, SQLAlchemy's default driver
                "postgresql+psycopg://u@127.0.0.1:1/x?sslmode=require",
                "postgresql+psycopg://u@h1:1,h2:2/x", "mysql://u@h/x"):
        assert StatusReader.open(url) is None, url


def test_a_server_it_cannot_reach_is_said_at_once_not_tried_again_the_engines_way() -> None:
    """Nobody listening: the engine could not connect either, so `baton status` says so
    (tests/cli/test_unreachable_database.py) instead of waiting for the host a second time."""
    with pytest.raises(DatabaseUnreachable, match=r"^cannot open the database "
                       r"postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/x: .*refused"):
        StatusReader.open("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    # a password given as a parameter is hidden too, in the URL and in the driver's words
    url = "postgresql+psycopg://u@127.0.0.1:1/x?password=hunter2"
    assert StatusReader.open(url) is None  # query options: the engine's way, which says it
    with pytest.raises(DatabaseUnreachable) as raised:
        ensure_schema(storage_engine.Database(url))
    assert "hunter2" not in str(raised.value) and "password=***" in str(raised.value)


def test_postgresql_urls_are_taken_apart_as_sqlalchemy_does() -> None:
    from sqlalchemy.dialects.postgresql import psycopg
    from sqlalchemy.engine import make_url

    for url in ("postgresql+psycopg://postgres@127.0.0.1:5432/baton",
                "postgresql+psycopg://us%40er:p%3Aw%2F@db.example:6543/my%20db",
                "postgresql+psycopg://user:@localhost/db", "postgresql+psycopg://localhost",
                "postgresql+psycopg://u@localhost/"):
        expected = psycopg.dialect().create_connect_args(make_url(url))[1]
        assert status_reads._postgresql_args(url.partition("://")[2]) == expected, url
