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

from gates.org import Org
from orchestrator.loader import load_org
from sandbox import workspace_from_org
from sandbox.dev import (
    DevSandbox,
    PortInUse,
    describe_database,
    run_dev,
    sandbox_app,
    sandbox_org,
    snapshot_path,
)
from sandbox.snapshot import SnapshotFile
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


def test_the_workspace_is_kept_across_restarts_where_it_still_fits(org: Org, tmp_path: Path) -> None:
    first = workspace_from_org(org)
    card = first.post_message("C0PAYMENTS1", text="R-1 card", blocks=[{"type": "divider"}])
    first.post_message("C0PAYMENTS1", text="in the thread", thread_ts=card.ts)
    first.update_message("C0PAYMENTS1", card.ts, text="R-1 card, edited")
    dm = first.open_dm("U0BOB0001")
    first.post_message(dm.id, text="escalated to you")
    first.publish_home("U0BOB0001", {"type": "home", "blocks": [{"type": "divider"}]})
    stranger = first.add_user("stranger")
    first.post_message(first.open_dm(stranger.id).id, text="for someone the org no longer has")
    first.post_ephemeral("C0PAYMENTS1", "U0BOB0001", text="never kept")
    kept = SnapshotFile(tmp_path / "baton.sandbox.json", first)
    kept.save()

    second = workspace_from_org(org)
    assert SnapshotFile(tmp_path / "baton.sandbox.json", second).load() == 3
    (restored_card,) = second.messages("C0PAYMENTS1", include_replies=False)
    assert restored_card.text == "R-1 card, edited" and restored_card.blocks == ({"type": "divider"},)
    assert [m.text for m in second.replies("C0PAYMENTS1", card.ts)] == ["R-1 card, edited", "in the thread"]
    assert second.dm_of("U0BOB0001") == dm and second.messages(dm.id)[0].text == "escalated to you"
    assert second.home("U0BOB0001") is not None and second.ephemerals() == []
    assert second.find_user("stranger") is None and len(second.channels()) == len(first.channels()) - 1
    # new ids and timestamps never collide with restored ones
    assert second.open_dm("U0CAROL01").id not in {c.id for c in first.channels()}
    assert float(second.post_message("C0PAYMENTS1", text="next").ts) > float(card.ts)


def test_the_sandbox_file_belongs_to_its_sqlite_database(tmp_path: Path) -> None:
    database = tmp_path / "runs.db"
    assert snapshot_path(f"sqlite:///{database}") == (tmp_path / "runs.sandbox.json", False)
    database.touch()
    assert snapshot_path(f"sqlite:///{database}") == (tmp_path / "runs.sandbox.json", True)
    assert snapshot_path("postgresql://db/baton", tmp_path) == (tmp_path / "baton-sandbox.json", True)


def test_skip_ahead_moves_the_bots_clock_forward_only_and_a_restart_does_not_go_back(tmp_path: Path) -> None:
    import httpx

    settings = make_settings(tmp_path / "baton.db")
    org = load_org(EXAMPLE_FLOWS / "org.yaml")
    with DevSandbox(settings, workspace_from_org(org, app=sandbox_app()), poll=0.05) as dev:
        page = dev.url.rstrip("/")
        headers = {"Origin": page}
        with httpx.Client(trust_env=False) as http:
            state = http.get(f"{page}/_ui/state").json()["clock"]
            assert state["ahead"] is None and state["skips"] == ["15m", "30m", "1h", "4h", "1d"]
            for wrong in ("2y", "-30m", "", "30"):
                refused = http.post(f"{page}/_ui/clock", json={"skip": wrong}, headers=headers)
                assert refused.status_code == 400 and "skip ahead by one of: 15m" in refused.json()["error"]
            assert http.get(f"{page}/_ui/state").json()["clock"]["ahead"] is None
            skipped = http.post(f"{page}/_ui/clock", json={"skip": "1d"}, headers=headers).json()
            assert skipped["ok"] and skipped["clock"]["ahead"] == "+1d"
        assert dev.service is not None
        engine = dev.service.engine
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": 20000}, "alice")
        started = engine.get_run("R-1").created_at
    # the next `baton dev` on this database starts no earlier than what it recorded
    with DevSandbox(settings, workspace_from_org(org, app=sandbox_app()), poll=0.05) as again:
        assert again.service is not None
        assert again.service.engine.clock.now().replace(tzinfo=None) >= started.replace(tzinfo=None)
        with httpx.Client(trust_env=False) as http:
            assert http.get(f"{again.url.rstrip('/')}/_ui/state").json()["clock"]["ahead"].startswith("+23h")


def test_a_sandbox_whose_bot_keeps_its_own_clock_has_no_skip_control(tmp_path: Path) -> None:
    import httpx

    from orchestrator.clock import SystemClock

    settings = make_settings(tmp_path / "baton.db")
    workspace = workspace_from_org(load_org(EXAMPLE_FLOWS / "org.yaml"), app=sandbox_app())
    with DevSandbox(settings, workspace, poll=0.05, clock=SystemClock()) as dev, \
            httpx.Client(trust_env=False) as http:
        page = dev.url.rstrip("/")
        assert http.get(f"{page}/_ui/state").json()["clock"] is None
        refused = http.post(f"{page}/_ui/clock", json={"skip": "30m"}, headers={"Origin": page})
        assert refused.status_code == 409 and "needs baton dev" in refused.json()["error"]
