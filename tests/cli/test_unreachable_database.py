"""A database Baton cannot open, as its operator meets it on the command line: one line that
names the database (never its password), the driver's reason and what to check; exit 2,
no traceback, and one attempt, not one per way of reading."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cli.conftest import Baton

COMMANDS = [("status",), ("status", "R-1"), ("run", "vendor-payment", "vendor=ACME", "amount=5"),
            ("decide", "R-1", "approve", "--as", "bob"), ("trace",), ("stats",), ("tokens", "list"),
            ("db", "upgrade")]


@contextmanager
def not_a_database() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts connections and closes them at once, as a host whose
    PostgreSQL is down behind a proxy does: (its port, the count of connections taken)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    taken = [0]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            taken[0] += 1
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], taken
    finally:
        listener.close()


def _said_once(result, url_shown: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot open the database {url_shown}: "), line
    assert "Traceback" not in result.stderr and "OperationalError" not in result.stderr


def test_every_command_names_an_unreachable_postgresql_once(baton: Baton) -> None:
    with not_a_database() as (port, taken):
        url = f"postgresql+psycopg://baton:hunter2@127.0.0.1:{port}/baton"
        attempts = {}
        for command in COMMANDS:
            before = taken[0]
            result = baton(*command, DATABASE_URL=url)
            _said_once(result, f"postgresql+psycopg://baton:***@127.0.0.1:{port}/baton")
            assert "DATABASE_URL names it: host, port, user, password, database" in result.stderr
            assert "hunter2" not in result.stdout + result.stderr
            attempts[command] = taken[0] - before
    # `status` reads without the engine first; a host it cannot reach is not tried again the
    # engine's way (it was: twice the wait for a host that times out)
    assert attempts[("status",)] == attempts[("status", "R-1")] == attempts[("db", "upgrade")] > 0, attempts


def test_a_sqlite_file_in_a_missing_folder_is_named_with_the_fix(baton: Baton, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "baton.db"
    for command in COMMANDS:
        result = baton(*command, DATABASE_URL=f"sqlite:///{missing}")
        _said_once(result, f"sqlite:///{missing}")
        assert "check that its folder exists and can be written (DATABASE_URL)" in result.stderr
    assert not (tmp_path / "no").exists()


def test_serve_names_an_unreachable_database_before_it_listens(baton: Baton) -> None:
    with not_a_database() as (port, _):
        result = baton("serve", "--http", "--port", "0", DATABASE_URL=f"postgresql+psycopg://b:p@127.0.0.1:{port}/b",
                       SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")
    _said_once(result, f"postgresql+psycopg://b:***@127.0.0.1:{port}/b")
