"""`baton db`: the database's schema."""

from __future__ import annotations

import typer

from bot.cli.baton import app, settings

db_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Database schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    from storage.engine import Database
    from storage.migrate import upgrade

    config = settings()
    db = Database(config.database_url)
    revision = upgrade(db)
    typer.echo(f"database at revision {revision}")
