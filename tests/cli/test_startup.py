"""What `baton` imports before it knows which command it runs: the import graph, not a timing
(bench/cli_start.py times it).

The bot/cli/ package (its __init__ and each group's module) is imported by every
invocation, `baton --help` included, so it imports typer and the standard library only;
each command imports what it uses in its own body. A command
must not pull in a library it does not use (matplotlib, openai, Slack, CEL, a web server).
Typer stays below 0.29 (pyproject.toml), which converts every argument with pydantic.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.conftest import Baton

# Libraries no command needs before it runs; the database, the flow files' validators and
# the logging set-up included, because `--help` and a mistyped command need none of them.
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "pydantic", "pydantic_settings", "yaml", "structlog",
         "rich", "matplotlib", "openai", "slack_bolt", "slack_sdk", "cel", "fastapi", "starlette",
         "uvicorn", "httpx", "apscheduler", "prometheus_client", "psycopg", "mcp")
# Used by some commands only: never by a command that shows what is stored.
FOR_SOME = ("matplotlib", "openai", "slack_bolt", "slack_sdk", "fastapi", "starlette", "uvicorn",
            "apscheduler", "prometheus_client", "mcp", "alembic")

_REPORT = ("import atexit, json, sys\n"
           "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n")


def _modules(baton: Baton, *args: str, code: str = "from bot.cli import main; main()",
             **env: str) -> set[str]:
    """Every module loaded by the time `baton ARGS` exits (printed by an exit hook)."""
    done = subprocess.run([sys.executable, "-c", _REPORT + code, *args], capture_output=True,
                          text=True, timeout=60, env={**baton.env, **env}, cwd=baton.cwd)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(packages))


def test_importing_the_cli_imports_no_library_a_command_would(baton: Baton) -> None:
    modules = _modules(baton, code="import bot.cli")
    assert _loaded(modules, HEAVY) == []
    baton_modules = {m for m in modules if m.split(".")[0] in ("bot", "orchestrator", "gates", "storage")}
    assert baton_modules == {"bot", "bot.cli", "orchestrator", "orchestrator.errors"}


def test_help_and_a_mistyped_command_import_nothing_heavy(baton: Baton) -> None:
    for args in (("--help",), ("statsu",), ("run", "--help"), ("flows", "validate", "--help"),
                 ("status", "--help"), ("trace", "R-1", "--nope")):
        assert _loaded(_modules(baton, *args), HEAVY) == [], args


def test_reading_commands_load_neither_cel_nor_what_other_commands_use(baton: Baton) -> None:
    assert baton("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice").returncode == 0
    for args in (("status", "R-1"), ("status",), ("trace", "R-1"), ("trace", "verify", "R-1")):
        modules = _modules(baton, *args)
        assert _loaded(modules, FOR_SOME) == [], args
        assert "cel.cel" not in modules and "cel" not in modules, args  # no condition compiled


def test_only_the_commands_that_draw_or_validate_load_matplotlib_and_cel(baton: Baton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stats = _modules(baton, "stats")
    assert "matplotlib" not in _loaded(stats, ("matplotlib",))
    charted = _modules(baton, "stats", "--chart", str(tmp_path / "stats.png"))
    assert _loaded(charted, ("matplotlib",)) == ["matplotlib"]  # the check can see it when it is there
    validated = _modules(baton, "flows", "validate")
    assert "cel.cel" in validated or "cel" in validated


# What `baton status` never imports: it reads the settings (without pydantic where each is
# plainly right: orchestrator/settings_env.py), the org file and the database through the
# DB-API driver (bot/cli_status.py, storage/status_reads.py).
NOT_FOR_STATUS = ("sqlalchemy", "sqlmodel", "alembic", "pydantic", "pydantic_settings",
                  "structlog", "cel", "rich", *FOR_SOME)
ENGINE = ("orchestrator.engine", "orchestrator.bootstrap", "orchestrator.loader", "storage.engine",
          "storage.models", "storage.records", "storage.status_queries")


def test_status_reads_the_database_without_sqlalchemy_or_the_engine(baton: Baton) -> None:
    assert baton("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice").returncode == 0
    for args in (("status", "R-1"), ("status",), ("status", "--as", "bob"), ("status", "R-9")):
        modules = _modules(baton, *args)
        assert _loaded(modules, NOT_FOR_STATUS) == [], args
        assert sorted(modules & set(ENGINE)) == [], args
        assert "storage.status_reads" in modules, args  # it did read: nothing fell back
    # where the database is to be created, the engine creates it (and the check can see it)
    fresh = _modules(baton, "status", DATABASE_URL=f"sqlite:///{baton.cwd / 'fresh.db'}")
    assert "orchestrator.engine" in fresh and "sqlalchemy" in _loaded(fresh, ("sqlalchemy",))
    # a setting whose text pydantic is to judge (1e1 seconds) is read by pydantic, and still
    # without the engine
    judged = _modules(baton, "status", "R-1", BATON_TIMER_SWEEP="1e1")
    assert _loaded(judged, ("pydantic", "pydantic_settings")) == ["pydantic"]
    assert "storage.status_reads" in judged and sorted(judged & set(ENGINE)) == []
