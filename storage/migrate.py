"""Schema migrations (Alembic), applied by `baton db upgrade` and on start.

Two processes starting on a fresh database must not both create the tables: the
upgrade runs while holding the database's write lock (BEGIN IMMEDIATE on SQLite, a
transaction-scoped advisory lock on PostgreSQL), and whoever gets it second finds the
schema already at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from storage.engine import Database
from storage.unreachable import DatabaseUnreachable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision. tests/storage/test_storage.py keeps it equal to the scripts'
# head, so a start-up check is one SELECT instead of loading every script.
HEAD = "0012"
_PG_MIGRATION_LOCK = 0x42A70D  # arbitrary, constant advisory-lock key


def _config(db: Database) -> Config:
    from alembic.config import Config  # alembic is only needed when there is work to do

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def script_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The schema's revision (None: never migrated). Raises DatabaseUnreachable when no
    connection can be opened: the first thing every command does with the database."""
    with _connect(db, db.engine) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to `revision`; return the revision it is at afterwards."""
    from alembic import command

    cfg = _config(db)
    with _connect(db, db.engine.execution_options(baton_write=True)) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db)


def _connect(db: Database, engine: sa.Engine) -> sa.Connection:
    """A connection of `engine`; DatabaseUnreachable when none can be opened."""
    try:
        return engine.connect()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnreachable(db.url, exc) from exc


def ensure_schema(db: Database) -> None:
    """Apply pending migrations, cheaply when there are none."""
    if current_revision(db) != HEAD:
        upgrade(db)
