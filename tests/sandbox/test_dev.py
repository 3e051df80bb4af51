"""`baton dev`'s parts in-process: the org it gives the bot, the port check, start and stop.
(The command itself, with real signals and a browser, is tested in tests/browser.)"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from bot.dev import DevSandbox, PortInUse, describe_database, run_dev, sandbox_app, sandbox_org
from bot.sandbox import workspace_from_org
from gates.org import Org
from orchestrator.loader import load_org
from tests.conftest import EXAMPLE_FLOWS, make_settings


def test_people_without_a_slack_id_get_one_the_bot_also_knows(org: Org, tmp_path: Path) -> None:
    workspace = workspace_from_org(org, app=sandbox_app())
    made_up = workspace.find_user("nobody")
    assert made_up is not None and made_up.title == ""
    assert workspace.find_user("bob").title == "finance-approver"  # type: ignore[union-attr]
    assert workspace.find_user("alice").title == "admin"  # type: ignore[union-attr]
    path = sandbox_org(org, workspace, tmp_path)
    assert path is not None
    derived = load_org(path)
    assert derived.principal_for_slack(made_up.id) == "nobody"
    assert derived.principal_for_slack("U0BOB0001") == "bob"
    assert derived.data.roles == org.data.roles and derived.data.admins == org.data.admins
    full = load_org(EXAMPLE_FLOWS / "org.yaml")
    assert sandbox_org(full, workspace_from_org(full), tmp_path / "unused") is None


def test_each_run_makes_up_its_own_bot_token_and_signing_secret() -> None:
    first, second = sandbox_app(), sandbox_app()
    assert first.signing_secret != second.signing_secret and len(first.signing_secret) == 64
    assert first.bot_token.startswith("xoxb-") and first.bot_token != second.bot_token


def test_the_database_is_named_with_its_file_and_without_a_password() -> None:
    assert describe_database("sqlite:///baton.db").endswith(f"({Path('baton.db').resolve()})")
    assert describe_database("postgresql://baton:s3cret@db/baton") == "postgresql://baton:***@db/baton"


def test_a_taken_port_is_refused_before_the_database_is_opened(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path / "baton.db")
        dev = DevSandbox(settings, workspace_from_org(load_org(EXAMPLE_FLOWS / "org.yaml")), port=port)
        with pytest.raises(PortInUse, match=f"port {port} is in use: is another `baton dev` running"):
            dev.start()
        err = io.StringIO()
        assert run_dev(settings, port=port, stop=threading.Event(), out=err) == 2
    assert not (tmp_path / "baton.db").exists()


def test_run_dev_serves_until_told_to_stop_and_leaves_nothing_listening(tmp_path: Path) -> None:
    out = io.StringIO()
    stop = threading.Event()
    codes: list[int] = []
    settings = make_settings(tmp_path / "baton.db")
    runner = threading.Thread(target=lambda: codes.append(run_dev(settings, port=0, stop=stop, out=out)))
    runner.start()
    deadline = time.monotonic() + 20
    while "Ctrl-C stops everything" not in out.getvalue():
        assert time.monotonic() < deadline and runner.is_alive(), out.getvalue()
        time.sleep(0.02)
    shown = out.getvalue()
    page = re.search(r"Open\s+http://127\.0\.0\.1:(\d+)/", shown)
    bot = re.search(r"bot\s+http://127\.0\.0\.1:(\d+)/slack/events", shown)
    assert page and bot and "vendor-payment" in shown and str(tmp_path / "baton.db") in shown
    stop.set()
    runner.join(20)
    assert codes == [0] and out.getvalue().endswith("Stopped.\n")
    for port in (page.group(1), bot.group(1)):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
