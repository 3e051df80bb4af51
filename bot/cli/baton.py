"""The `baton` app itself: its --version, and what every command uses: failing with a
message, the settings, the engine, and who is acting.

Identity on the command line is asserted with `--as` (an org user or Slack id): the CLI
is an operator's tool on a machine that already holds the database. Bad input exits
with status 2 and a message that names the problem; nothing is written.

Every `baton` invocation imports this module and the commands' modules (bot/cli/__init__.py),
`baton --help` included, so they import only typer and the standard library at module level.
A command imports what it uses inside its own body (the database, the engine, CEL,
matplotlib, openai, Slack, a web server), and tests/cli/test_startup.py fails when a heavy
library is imported with them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from orchestrator.errors import BatonError, FlowError

if TYPE_CHECKING:
    from gates.org import Org
    from orchestrator.engine import Engine
    from orchestrator.settings import Settings

# Plain help and usage errors (click's): typer's rich panels import rich, markdown-it and
# pygments first, which took longer than the rest of `baton --help` (bench/cli_start.py).
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Baton: human approval and escalation for AI-agent flows.")


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"baton {version('baton')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        typer.echo("baton (version unknown: not installed; pip install -e .)")
    raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print Baton's version and exit.")] = False,
) -> None:
    pass


# What the command a BatonError points to (`see`) does, on the command line
_SEE = {"status": "lists runs"}


def fail(problem: str | BatonError, code: int = 2) -> NoReturn:
    """Say what is wrong (and, for a BatonError, the command that helps) and exit."""
    text = str(problem)
    if isinstance(problem, BatonError):
        if problem.see:
            text += f"; `baton {problem.see}` {_SEE.get(problem.see, 'shows what there is')}"
        if problem.usage:
            text += f"\nusage: baton {problem.usage}"
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from orchestrator.settings import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the variable
        fail(f"configuration: {exc}")


def engine(*, echo: bool = True) -> Engine:
    from orchestrator.bootstrap import open_engine
    from orchestrator.logs import configure_logging

    config = settings()
    configure_logging(config.log_format, os.environ.get("BATON_LOG_LEVEL", "warning"))
    try:
        built = open_engine(config)
    except FlowError as exc:
        fail(exc)
    if echo:
        from orchestrator.console import ConsoleNotifier

        built.observers.append(ConsoleNotifier(built.org, typer.echo))
    return built


def who(eng: Engine, name: str, option: str = "--as") -> str:
    """The person `name` names in the org file (a key, @key, user:key or a Slack id)."""
    return person_named(eng.org, name, option)


def person_named(org: Org, name: str, option: str = "--as") -> str:
    try:
        return org.principal(name)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def actor(eng: Engine, as_user: str | None) -> str:
    """Who is acting: --as, else $BATON_USER, else the operating-system login when the org
    file lists it under a user's `logins`. Never guessed: a name the org file does not know
    is refused the same way whatever it came from, and nothing is written."""
    if as_user is not None:  # given, even empty (`--as "$UNSET"`): never fall back to the login
        return who(eng, as_user)
    if "BATON_USER" in os.environ:
        return who(eng, os.environ["BATON_USER"], "BATON_USER")
    import getpass

    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        login = ""
    person = eng.org.principal_for_login(login) if login else None
    if person is None:
        org = eng.org
        if not org.data.users:
            fail(f"who is acting? Say --as or set BATON_USER: {org.known_users}")
        why = f"your login {login!r} is not one of the logins in {org.source}" if login else \
            "this process has no login name"
        fix = f", or add {login!r} to a user's logins there (docs/flows.md)" if login else ""
        fail(f"who is acting? {why[0].upper()}{why[1:]}. Say --as NAME (users: "
             f"{', '.join(sorted(org.data.users))}), set BATON_USER{fix}.")
    return person
