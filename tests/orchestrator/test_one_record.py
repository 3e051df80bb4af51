"""One record per happening: an event points at the trace entry it reports and stores no
copy of it; the notifiers read that entry; events an older Baton queued (a payload of their
own, no entry) are still delivered after the upgrade; every kind has its words in one table."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator.clock import FakeClock
from orchestrator.console import describe
from orchestrator.engine import Engine
from orchestrator.events import EVENT_KINDS, EXTRAS, Dispatcher, DomainEvent
from orchestrator.kinds import KINDS
from orchestrator.readers.export import verify_all
from storage import migrate, trace
from storage.models import Event
from storage.writer import Writer
from tests.source_literals import literals

ROOT = Path(__file__).resolve().parents[2]


class Recording:
    """A durable sink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def handle(self, tx: Writer, event: DomainEvent) -> None:
        self.events.append(event)


class Listening:
    """An in-process observer that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def notify(self, event: DomainEvent) -> None:
        self.events.append(event)


def deliver(engine: Engine, clock: FakeClock) -> list[DomainEvent]:
    sink = Recording()
    Dispatcher(engine.db, sink, clock).deliver_pending()
    return sink.events


def test_an_event_points_at_its_entry_and_stores_only_what_the_entry_does_not_say(
        test_engine: Engine, clock: FakeClock) -> None:
    published = Listening()
    test_engine.observers.append(published)
    run = test_engine.start_run("two-approvals", {"amount": "100"}, "alice")
    test_engine.decide(run.ref, "bob", "approve", reason="ok")
    test_engine.halt("erin", "incident")

    with test_engine.db.read() as s:
        rows = list(s.exec(select(Event).order_by(col(Event.id))))
        pointed = [trace.entry_at(s, trace.chain_of(row.run_id), row.seq or 0) for row in rows]
    assert [(row.kind, entry.kind if entry else None, row.run_id)
            for row, entry in zip(rows, pointed, strict=True)] == [
        ("run_started", "run_started", run.id), ("gate_opened", "gate_opened", run.id),
        ("vote_recorded", "decision", run.id), ("halted", "halted", None)]
    # no copy of the entry: only the tally, which the trace does not record
    assert [row.payload for row in rows] == [{}, {}, {"approvals": 1, "quorum": 2}, {}]

    delivered = deliver(test_engine, clock)
    # the durable sink reads what the in-process observers were given, from the entry
    assert [(e.kind, e.seq, e.entry, e.actor, e.data, e.extra) for e in delivered] == \
        [(e.kind, e.seq, e.entry, e.actor, e.data, e.extra) for e in published.events]
    assert [describe(e, test_engine.org) for e in delivered] == [
        f"{run.ref} started: two-approvals by Alice Ng",
        f"{run.ref} waiting at gate 'approve': Approve two-approvals? (can decide: Bob Ortiz, "
        "Carol Diaz, Dave Kim)",
        f"{run.ref} Bob Ortiz chose approve at 'approve' (1 of 2 approvals)",
        "Baton halted by Erin Park: incident"]


def test_events_an_older_baton_queued_are_delivered_after_the_upgrade(
        test_engine: Engine, clock: FakeClock) -> None:
    """A database of the version before 0011 with events still queued: they carry their own
    payload and point at no entry. After `baton db upgrade` each is delivered, read as the
    entry it reported would say it, and says what it said."""
    from alembic import command

    run = test_engine.start_run("escalating", {}, "alice")
    (gate,) = test_engine.open_gates(run.id)
    deliver(test_engine, clock)  # what the current version wrote is delivered
    db = test_engine.db
    db.engine.dispose()
    cfg = migrate._config(db)
    with db.engine.execution_options(baton_write=True).connect() as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    assert migrate.current_revision(db) == "0010"

    # the rows as Baton 0010 wrote them (orchestrator.events.emit, its payloads literally)
    at = clock.now()
    until = (at + timedelta(hours=1)).isoformat()
    deadline = (at + timedelta(minutes=30)).isoformat()
    ref = run.ref
    written = [
        (run.id, "gate_opened", {"run": ref, "gate_id": gate.id, "gate": "approve", "kind": "approval",
                                 "title": "Approve escalating?", "notify": ["role:finance-approver"],
                                 "approvers": ["bob", "carol"], "deadline": deadline}),
        (run.id, "claimed", {"run": ref, "gate_id": gate.id, "gate": "approve", "by": "bob",
                             "until": until, "deadline": until}),
        (run.id, "reminder", {"run": ref, "gate_id": gate.id, "gate": "approve", "level": 1,
                              "notify": ["role:finance-approver"], "deadline": deadline,
                              "why": "snooze ended"}),
        (run.id, "escalated", {"run": ref, "gate_id": gate.id, "gate": "approve", "final": "hold",
                               "why": "no decision after 1 round", "notify": []}),
        (run.id, "vote_recorded", {"run": ref, "gate_id": gate.id, "gate": "approve", "by": "bob",
                                   "option": "approve", "approvals": 1, "quorum": 2}),
        (run.id, "gate_decided", {"run": ref, "gate_id": gate.id, "gate": "approve", "kind": "conflict",
                                  "outcome": "approve", "option": "follow_risk",
                                  "decided_by": ["frank"], "why": "chosen"}),
        (run.id, "action_reported", {"run": ref, "action": "pay", "tool": "pay_vendor",
                                     "reported_by": "service:billing-agent", "succeeded": False,
                                     "error": "boom"}),
        (None, "halted", {"run": None, "by": "erin", "reason": "incident"}),
    ]
    table = sa.Table("event", sa.MetaData(),
                     *(sa.Column(c.name, c.type, primary_key=c.primary_key)
                       for c in Event.__table__.c if c.name != "seq"))  # type: ignore[attr-defined]
    with db.engine.execution_options(baton_write=True).connect() as conn, conn.begin():
        conn.execute(table.insert(), [{"run_id": run_id, "kind": kind, "payload": payload,
                                       "created_at": at, "attempts": 0}
                                      for run_id, kind, payload in written])

    assert migrate.upgrade(db) == migrate.HEAD
    delivered = deliver(test_engine, clock)
    assert [e.kind for e in delivered] == [kind for _, kind, _ in written]
    assert all(e.seq is None for e in delivered)
    assert [(e.entry, e.actor) for e in delivered] == [
        ("gate_opened", "baton"), ("claimed", "bob"), ("snooze_ended", "baton"),
        ("escalation_exhausted", "baton"), ("decision", "bob"), ("gate_decided", "baton"),
        ("action_failed", "service:billing-agent"), ("halted", "erin")]
    assert [describe(e, test_engine.org) for e in delivered] == [
        f"{ref} waiting at gate 'approve': Approve escalating? (can decide: Bob Ortiz, Carol Diaz, "
        "next step 2026-01-05 09:30 UTC)",
        f"{ref} 'approve' claimed by Bob Ortiz until 2026-01-05 10:00 UTC",
        f"{ref} reminder for 'approve' to role:finance-approver",
        f"{ref} escalation of 'approve' ended (hold): no decision after 1 round",
        f"{ref} Bob Ortiz chose approve at 'approve' (1 of 2 approvals)",
        f"{ref} gate 'approve': follow_risk chosen by Frank Li",
        f"{ref} action_reported",
        "Baton halted by Erin Park: incident"]
    with db.read() as s:
        assert s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).all() == []
    # and the trace was not touched by any of it
    assert verify_all(db)[1] == []
    # the new version's events still point at their entries after the round trip
    test_engine.claim(run.ref, "bob")
    (claimed,) = deliver(test_engine, clock)
    assert (claimed.kind, claimed.entry, claimed.seq is not None) == ("claimed", "claimed", True)


def _recorded_kinds() -> dict[str, str]:
    """Kinds appended to the trace as literals: `tx.record(KIND, ...)` and
    `trace.append(..., kind=KIND)`, in orchestrator/ and bot/."""
    found: dict[str, str] = {}
    for path in sorted([*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                continue
            kinds: list[ast.expr] = []
            if call.func.attr == "record" and call.args:
                kinds = [call.args[0]]
            elif call.func.attr == "append" and isinstance(call.func.value, ast.Name) \
                    and call.func.value.id == "trace":
                kinds = [k.value for k in call.keywords if k.arg == "kind"]
            for kind in kinds:
                for literal in literals(kind):
                    found.setdefault(literal, f"{path.relative_to(ROOT)}:{call.lineno}")
    return found


def test_every_kind_of_entry_has_its_words_in_the_table() -> None:
    recorded = _recorded_kinds()
    assert len(recorded) >= 30, sorted(recorded)  # the scan sees the record calls
    # the two the timeline has always shown as their data
    missing = {k: where for k, where in recorded.items()
               if k not in KINDS and k not in ("conflict_settling", "settle_ended")}
    assert not missing, f"recorded but not in orchestrator.kinds.KINDS: {missing}"
    assert set(EXTRAS) <= EVENT_KINDS
