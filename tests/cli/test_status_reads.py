"""`baton status` reads the database through its DB-API driver (storage/status_reads.py), not
the engine: what it prints must be, byte for byte, what it printed when it read through the
engine. The reference below is that command's body as it was (main at b4345c0; its failed
Slack calls now read from storage.slack, where they moved), run on the same database through
the engine; the command under test is the real `baton`, a process."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Engine
from orchestrator.errors import BatonError
from storage.models import SlackOutbox
from tests.cli.conftest import Baton


def _status_as_before(eng: Engine, ref: str | None, as_user: str | None) -> tuple[str, str, int]:
    """The status command's body before the DB-API reader, verbatim but for its output:
    (stdout, stderr, exit code)."""
    out, err = io.StringIO(), io.StringIO()

    def echo(text: str) -> None:
        out.write(text + "\n")

    class Exit(Exception):
        pass

    def fail(problem: Any) -> None:
        text = str(problem)
        if isinstance(problem, BatonError) and problem.see:
            text += f"; `baton {problem.see}` lists runs"
        err.write(f"error: {text}\n")
        raise Exit

    def who(name: str) -> str:
        try:
            return eng.org.principal(name)
        except ValueError as exc:
            fail(f"--as: {exc}")
            raise

    def failed_slack_calls(run_id: int | None = None) -> None:
        from orchestrator.wording import count, moment
        from storage.slack import latest_failed

        with eng.db.read() as s:
            failed, latest = latest_failed(s, run_id=run_id)
        if not failed:
            return
        echo(f"{'  ' if run_id else chr(10)}{count(failed, 'Slack call')} failed for good "
             "(baton_slack_calls_failed in /metrics, slack_call_failed in the log); latest:")
        for call in latest:
            at = moment(call.sent_at) if call.sent_at else "?"
            echo(f"{'    ' if run_id else '  '}{at} {call.method}: {call.last_error or 'failed'}")

    org = eng.org
    try:
        if ref is None:
            from sqlmodel import col, select

            from storage.models import Run

            with eng.db.read() as s:
                runs = list(s.exec(select(Run).where(col(Run.status).in_(("running", "waiting", "held")))
                                   .order_by(col(Run.id))))
            if not runs:
                echo("no open runs")
            gates = {g.run_id: g for g in eng.open_gates()}
            for item in runs:
                gate = gates.get(item.id)
                where = f"at gate '{gate.key}'" if gate else f"at {item.cursor}"
                echo(f"{item.ref:8} {item.flow_name:20} {item.status:8} {where} "
                     f"(requested by {org.display(item.requester)})")
            if as_user:
                user = who(as_user)
                mine = eng.pending_for(user)
                echo(f"\n{len(mine)} pending for {org.display(user)}:")
                for gate in mine:
                    echo(f"  R-{gate.run_id} gate '{gate.key}': {gate.title}")
            failed_slack_calls()
            return out.getvalue(), err.getvalue(), 0
        try:
            current = eng.get_run(ref)
        except BatonError as exc:
            fail(exc)
        from orchestrator.wording import deadline, moment, values

        echo(f"{current.ref} {current.flow_name}: {current.status}"
             + (f" ({current.outcome}: {current.reason})" if current.reason else ""))
        echo(f"  requested by {org.display(current.requester)} at {moment(current.created_at)}")
        echo(f"  inputs: {values(current.inputs)}")
        from orchestrator.gating import eligible

        for gate in eng.open_gates(current.id):
            people = ", ".join(org.display(p) for p in sorted(eligible(gate, current.requester)))
            echo(f"  waiting at gate '{gate.key}' ({gate.kind}): {gate.title}")
            echo(f"    can decide: {people}; options: {', '.join(o['id'] for o in gate.options)}")
            if gate.chain:
                levels = len(gate.chain["levels"])
                state = gate.esc_state or "waiting"
                if state == "claimed" and gate.claimed_by:
                    state = f"claimed by {org.display(gate.claimed_by)}"
                elif state == "snoozed" and gate.snoozed_until:
                    state = f"snoozed until {gate.snoozed_until:%H:%M} UTC"
                echo(f"    escalation {gate.chain['name']}: level {gate.esc_level + 1} of "
                     f"{levels}, {state}, next step {deadline(gate.next_deadline)}"
                     if gate.next_deadline else f"    escalation {gate.chain['name']}: {state}")
        failed_slack_calls(current.id)
    except Exit:
        return out.getvalue(), err.getvalue(), 2
    return out.getvalue(), err.getvalue(), 0


def _failed_call(eng: Engine, run_id: int | None, method: str, error: str | None, sent: bool) -> None:
    now = eng.clock.now()
    with eng.db.write() as s:
        s.add(SlackOutbox(run_id=run_id, lane="test", method=method, status="failed",
                          attempts=5, last_error=error, created_at=now,
                          sent_at=now if sent else None))


@pytest.fixture
def runs(engine: Engine) -> Iterator[Engine]:
    """Runs in every state `baton status` shows: waiting at a gate with an escalation chain,
    claimed, snoozed, with a decision short of its quorum, succeeded, stopped; and Slack calls
    that failed for good, of a run and of none."""
    start = lambda amount: engine.start_run(  # noqa: E731
        "vendor-payment", {"vendor": "ACME “Ltd”", "amount": amount}, "alice").ref
    start(20000)  # waiting at 'approve', escalation level 1
    engine.claim(start(12000.5), "bob")  # claimed
    engine.snooze(start(21000), "carol", timedelta(minutes=15))  # snoozed
    done = start(15000)  # approved: succeeded
    engine.decide(done, "bob", "approve", reason="matches the PO")
    stopped = start(11000)  # stopped by its requester
    engine.stop(stopped, "alice", "typo in the amount")
    engine.start_run("vendor-payment", {"vendor": "Small", "amount": 10}, "bob")  # no gate
    _failed_call(engine, 1, "chat.postMessage", "channel_not_found", sent=True)
    _failed_call(engine, 1, "chat.update", None, sent=False)
    _failed_call(engine, None, "views.publish", "invalid_auth", sent=True)
    yield engine


ASKS: list[tuple[str | None, str | None]] = [
    ("R-1", None), ("R-2", None), ("R-3", None), ("R-4", None), ("R-5", None), ("R-6", None),
    ("r-0003", None), ("R-99", None), ("xyz", None), ("R-99999999999999999999", None),
    (None, None), (None, "bob"), (None, "carol"), (None, "alice"), (None, "U0DAVE001"),
    (None, "zed"),
]


def test_status_prints_what_it_printed_through_the_engine(runs: Engine, baton: Baton) -> None:
    for ref, as_user in ASKS:
        args = [*([ref] if ref else []), *(["--as", as_user] if as_user else [])]
        done = baton("status", *args)
        assert (done.stdout, done.stderr, done.returncode) == _status_as_before(runs, ref, as_user), args
    assert "claimed by Bob Ortiz" in baton("status", "R-2").stdout  # the scenario has what it claims
    assert "snoozed until" in baton("status", "R-3").stdout
    assert "2 Slack calls failed for good" in baton("status", "R-1").stdout


def test_a_database_to_create_or_migrate_is_created_or_migrated_as_before(baton: Baton,
                                                                          tmp_path: Path) -> None:
    missing = tmp_path / "new" / "baton.db"
    missing.parent.mkdir()
    done = baton("status", DATABASE_URL=f"sqlite:///{missing}")
    assert (done.stdout, done.returncode) == ("no open runs\n", 0)
    assert missing.exists()  # created and migrated, as every command does
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert baton("status", "R-1", DATABASE_URL=f"sqlite:///{empty}").stderr == \
        "error: no run R-1; `baton status` lists runs\n"
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM run").fetchone() == (0,)


def test_bad_settings_and_a_bad_org_file_are_refused_as_by_every_command(baton: Baton,
                                                                         tmp_path: Path) -> None:
    for env in ({"BATON_KEEP_DELIVERED_DAYS": "0.5"}, {"baton_log_format": "loud"},
                {"BATON_METRICS_TOKEN": "short"}):
        status, other = baton("status", **env), baton("tokens", "list", **env)
        assert status.returncode == other.returncode == 2, env
        assert status.stderr == other.stderr and "error: configuration: 1 validation error" in status.stderr
    org = tmp_path / "org.yaml"
    org.write_text("users:\n  Bob: {name: Bob}\n")
    status, other = baton("status", BATON_ORG=str(org)), baton("tokens", "list", BATON_ORG=str(org))
    assert status.returncode == other.returncode == 2
    assert status.stderr == other.stderr and "'Bob' is not a valid name" in status.stderr


def test_a_dotenv_file_is_read_as_by_every_command(runs: Engine, baton: Baton) -> None:
    (baton.cwd / ".env").write_text(f"DATABASE_URL={baton.database_url}\n")
    env = {k: v for k, v in baton.env.items() if k != "DATABASE_URL"}
    import subprocess

    done = subprocess.run(baton.command("status", "R-1"), capture_output=True, text=True,
                          timeout=60, env=env, cwd=baton.cwd)
    assert (done.stdout, done.stderr) == _status_as_before(runs, "R-1", None)[:2]
