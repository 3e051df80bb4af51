"""Two `baton serve --http` replicas on one database (PostgreSQL in CI's second pass),
driven by signed requests spread across both, with one replica killed mid-way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import col, select

from sandbox import Driver, EmulatorServer, workspace_from_org
from storage.engine import Database
from storage.models import Decision, Event, Run, SlackOutbox, TraceEntry
from tests.bot.conftest import BOB, CAROL, DAVE, ORG, PAYMENTS
from tests.bot.processes import Replica, eventually, serve_env
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS
from tests.figures import Figures

PEOPLE = [BOB, CAROL, DAVE, "U0ERIN001", "U0FRANK01", "U0ALICE01", "U0GRACE01", "U0HENRY01"]


@pytest.fixture
def cluster(emulator: EmulatorServer, database_url: str, tmp_path: Path
            ) -> Iterator[tuple[list[Replica], list[Driver], Database]]:
    workspace = workspace_from_org(ORG)
    emulator.reset(workspace)
    env = serve_env(database_url, TEST_FLOWS, EXAMPLE_FLOWS / "org.yaml", emulator.api_url,
                    workspace, tmp_path / "ledger.jsonl")
    db = Database(database_url)
    from storage.migrate import ensure_schema

    ensure_schema(db)  # both replicas start on a migrated database
    replicas = [Replica(env, tmp_path, "a"), Replica(env, tmp_path, "b")]
    try:
        for replica in replicas:
            replica.wait_ready()
        drivers = [emulator.driver(f"{r.url}/slack/events") for r in replicas]
        yield replicas, drivers, db
    finally:
        for replica in replicas:
            replica.stop()
        db.dispose()


@pytest.mark.reliability(item="2", promise="Concurrent deciders: 100 clicks on one gate, spread "
                         "over two Baton processes on one database, make exactly one outcome")
def test_hundred_concurrent_clicks_across_two_replicas_give_one_outcome(
        cluster, emulator: EmulatorServer, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    _, drivers, db = cluster
    drivers[0].slash_command("run replicas", user=BOB, channel=PAYMENTS)
    ws = emulator.workspace
    gate = eventually(lambda: next((m for m in ws.messages(PAYMENTS) if "Pay it?" in str(m.blocks)
                                    and m.thread_ts), None))

    # 100 clicks by 8 people on both buttons, all made before any answer arrives, sent at
    # once and alternately to the two replicas
    clicks = [drivers[i % 2].prepare_click(user=PEOPLE[i % len(PEOPLE)], channel=PAYMENTS,
                                           ts=gate.ts, action_id="gate.decide."
                                           + ("approve" if i % 3 else "reject"))
              for i in range(100)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda i: drivers[i % 2].send(clicks[i]).status, range(100)))
    figures.add("requests_sent", 100)
    # the same person on the same button again: a duplicate click
    figures.add("faults_injected", 100 - len({(PEOPLE[i % len(PEOPLE)], i % 3 > 0) for i in range(100)}))
    assert statuses == [200] * 100
    eventually(lambda: _finished(db, 1))
    with db.read() as s:
        decisions = s.exec(select(Decision)).all()
        closed = s.exec(select(TraceEntry).where(TraceEntry.kind == "gate_decided")).all()
        run = s.exec(select(Run)).one()
    figures.add("decisions_recorded", len(decisions))
    figures.add("refusals", 100 - len(decisions))
    assert len(decisions) == 1 and len(closed) == 1
    assert decisions[0].decider in ("bob", "carol")
    assert run.status == ("succeeded" if decisions[0].effect == "approve" else "rejected")
    # the gate message shows the one outcome; people who were refused were told why
    final = eventually(lambda: "Closed" not in str(ws.message(PAYMENTS, gate.ts).blocks)
                       and "by <@" in str(ws.message(PAYMENTS, gate.ts).blocks)
                       and ws.message(PAYMENTS, gate.ts))
    assert "actions" not in str([b["type"] for b in final.blocks])
    eventually(lambda: len(ws.ephemerals(DAVE)) >= 1)
    assert all("not an approver" in e.text or "already" in e.text for e in ws.ephemerals(DAVE))


@pytest.mark.reliability(item="1", promise="A Baton process killed while others run on the same "
                         "database loses nothing: each gate escalates once and every message "
                         "reaches Slack once, finished by the survivor")
def test_fifty_gates_escalate_once_each_and_a_killed_replica_loses_nothing(
        cluster, emulator: EmulatorServer, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    replicas, drivers, db = cluster
    ws = emulator.workspace
    for i in range(50):
        drivers[i % 2].slash_command("run replicas", user=BOB if i % 2 else CAROL, channel=PAYMENTS)
    time.sleep(0.5)
    replicas[0].kill()  # mid-way: it was still posting cards and opening gates
    figures.add("requests_sent", 50)
    figures.add("faults_injected")
    eventually(lambda: _count(db, TraceEntry, TraceEntry.kind == "gate_opened") == 50, 60)
    eventually(lambda: _count(db, TraceEntry, TraceEntry.kind == "escalated") == 50, 60)
    time.sleep(2)  # any second firing would show up now
    with db.read() as s:
        escalated = [e.run_id for e in s.exec(select(TraceEntry).where(TraceEntry.kind == "escalated"))]
    assert len(escalated) == 50 and len(set(escalated)) == 50  # exactly once each

    # every event becomes Slack messages, and every message reaches Slack exactly once, all by
    # the surviving replica for what the dead one left half done
    def delivered() -> bool:
        with db.read() as s:
            open_rows = s.exec(select(SlackOutbox.id).where(
                col(SlackOutbox.status).in_(("pending", "sending", "unsure")))).first()
            events = s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).first()
        return open_rows is None and events is None
    eventually(delivered, 90)
    with db.read() as s:
        failed = [(o.id, o.method, o.last_error, o.payload.get("channel"))
                  for o in s.exec(select(SlackOutbox).where(SlackOutbox.status == "failed"))]
    assert failed == []
    cards = [m for m in ws.messages(PAYMENTS, include_replies=False) if m.text.startswith("R-")]
    assert sorted(m.text.split()[0] for m in cards) == sorted(f"R-{i}" for i in range(1, 51))
    dave_dm = ws.dm_of(DAVE)
    assert dave_dm is not None
    pings = [m for m in ws.messages(dave_dm.id) if "Pay it?" in str(m.blocks)]
    assert len(pings) == 50, _missing_dms(db, emulator, pings)  # level 2: once per gate
    figures.add("escalations", len(escalated))
    figures.add("messages_delivered", _count(db, SlackOutbox, SlackOutbox.status == "sent"))


def _count(db: Database, model, *where) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return len(s.exec(select(model).where(*where)).all())


def _finished(db: Database, n: int) -> bool:
    with db.read() as s:
        return len(s.exec(select(Run).where(col(Run.status).in_(("succeeded", "rejected")))).all()) == n


def _missing_dms(db: Database, emulator: EmulatorServer, pings: list) -> str:  # type: ignore[type-arg]
    """Which gates have no DM, and what happened to their outbox rows (for a failure message)."""
    got = {(m.metadata or {}).get("event_payload", {}).get("outbox_id") for m in pings}
    lines = [f"{len(pings)} DMs; other DM channels: "
             f"{[c.id for c in emulator.workspace.channels() if c.id.startswith('D')]}"]
    with db.read() as s:
        rows = s.exec(select(SlackOutbox).where(SlackOutbox.method == "chat.postMessage",
                                                col(SlackOutbox.ref).like("%:dm:U0DAVE001")))
        for row in rows:
            if row.id not in got:
                calls = [(c.method, c.status, c.fault) for c in emulator.calls
                         if (c.args.get("metadata") or {}).get("event_payload", {}).get("outbox_id")
                         == row.id]
                lines.append(f"row {row.id} {row.ref} {row.status} attempts={row.attempts} "
                             f"error={row.last_error} claimed_by={row.claimed_by} calls={calls}")
    return "\n".join(lines)
