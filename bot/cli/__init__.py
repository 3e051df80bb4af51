"""The `baton` command line (the `baton` script runs `main`), one module per group of commands:

    baton.py    the app, its --version, and what every command uses: `fail`, the settings,
                the engine, who is acting (--as)
    runs.py     run, decide, signal, stop, claim, snooze, reassign, halt, resume, tick
    reading.py  status, trace, stats
    serving.py  serve, dev, mcp
    flows.py    flows validate, flows list
    db.py       db upgrade
    tokens.py   tokens create, list, revoke

A group's module registers its commands on the app when it is imported. Importing this
package imports none of them, and nothing of Baton but orchestrator.errors
(tests/cli/test_startup.py): `main()` and `app` load them all, because `baton --help` lists
every command; each command imports what it uses in its own body.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, NoReturn

import typer

from orchestrator.errors import BatonError

# In the order `baton --help` lists their commands: Typer keeps the order of registration.
GROUPS = ("runs", "reading", "serving", "flows", "db", "tokens")

# Where the names other code imports from `bot.cli` live (it was one module, bot/cli.py).
_HOMES = {"fail": "baton", "settings": "baton", "engine": "baton", "who": "baton",
          "actor": "baton", "setup_warnings": "flows", "slack_transport": "serving"}


def baton_app() -> typer.Typer:
    """The `baton` app with every group's commands registered on it."""
    for group in GROUPS:
        import_module(f"{__name__}.{group}")
    from bot.cli.baton import app

    return app


def main() -> None:
    try:
        baton_app()()
    except BatonError as exc:  # anything not caught closer to the command
        _exit(exc)
    except Exception as exc:
        from storage.unreachable import DatabaseUnreachable  # not imported before it is needed

        if not isinstance(exc, DatabaseUnreachable):
            raise
        _exit(exc)  # any command, the database it cannot open: one line, not a traceback


def _exit(problem: BatonError | Exception) -> NoReturn:
    from bot.cli.baton import fail

    try:
        fail(problem if isinstance(problem, BatonError) else str(problem))
    except typer.Exit as done:
        sys.exit(done.exit_code)


def __getattr__(name: str) -> Any:
    """`from bot.cli import app` (Typer's test runner takes the app), and the names in
    _HOMES, loaded when asked for."""
    if name == "app":
        return baton_app()
    if name in _HOMES:
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
