"""The durable event sink's delivery: a backlog shares transactions, one failing event
undoes nothing the others derived, and a run's events never overtake each other."""

import threading
from datetime import timedelta

from sqlmodel import col, select

from bot.outbox import enqueue
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.events import Dispatcher, DomainEvent
from storage import dialect
from storage.engine import Database
from storage.models import Event, SlackOutbox
from storage.writer import Writer


class Sink:
    """Turns each event into one queued Slack call, as the Slack sink does; fails on the
    event `fail_on` until it is set to 0."""

    def __init__(self, fail_on: int) -> None:
        self.fail_on = fail_on
        self.handled: list[int] = []

    def handle(self, tx: Writer, event: DomainEvent) -> None:
        assert event.id is not None
        enqueue(tx, lane=f"run:{event.run_id}", method="chat.postMessage", at=event.at,
                run_id=event.run_id, payload={"event": event.id})
        if event.id == self.fail_on:
            raise RuntimeError("Slack sink failed")
        self.handled.append(event.id)


def test_a_failing_event_in_a_shared_transaction_holds_back_only_its_run(
        engine: Engine, clock: FakeClock) -> None:
    for _ in range(3):  # each run: run_started, then gate_opened
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    with engine.db.read() as s:
        events = s.exec(select(Event.id, Event.run_id, Event.kind).order_by(col(Event.id))).all()
    assert [e.kind for e in events] == ["run_started", "gate_opened"] * 3
    second = [e.id for e in events if e.run_id == events[2].run_id]
    sink = Sink(fail_on=second[0])
    dispatcher = Dispatcher(engine.db, sink, clock, together=8)

    assert dispatcher.deliver_pending() == 4  # all but the second run's two
    with engine.db.read() as s:
        queued = [row.payload["event"] for row in s.exec(select(SlackOutbox).order_by(col(SlackOutbox.id)))]
        failed, waiting = (s.get(Event, event_id) for event_id in second)
    # the transaction the failure undid left nothing behind: each delivered event's call once
    assert sorted(queued) == sorted(e.id for e in events if e.id not in second)
    assert failed is not None and failed.delivered_at is None and failed.attempts == 1
    assert failed.last_error == "RuntimeError: Slack sink failed" and failed.next_attempt_at
    assert waiting is not None and waiting.delivered_at is None and waiting.attempts == 0

    assert dispatcher.deliver_pending() == 0  # not due yet: its run waits, nothing overtakes
    clock.advance(failed.next_attempt_at - clock.now())
    sink.fail_on = 0
    assert dispatcher.deliver_pending() == 2
    assert sink.handled[-2:] == second  # in the run's order
    with engine.db.read() as s:
        queued = [row.payload["event"] for row in s.exec(select(SlackOutbox))]
        undelivered = s.exec(select(Event.id).where(col(Event.delivered_at).is_(None))).all()
    assert sorted(queued) == [e.id for e in events] and undelivered == []


def test_a_later_event_not_due_yet_does_not_hold_back_the_earlier_ones_of_its_run(
        engine: Engine, clock: FakeClock) -> None:
    """Only what comes after an event that must wait waits: each run's first event is
    delivered in the shared transaction although its second is not due yet."""
    for _ in range(2):
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    with engine.db.write() as s:
        events = s.exec(select(Event).order_by(col(Event.id))).all()
        for row in events[1::2]:  # each run's gate_opened: retried in a minute
            row.next_attempt_at = clock.now() + timedelta(minutes=1)
            s.add(row)
    sink = Sink(fail_on=0)
    assert Dispatcher(engine.db, sink, clock, together=8).deliver_pending() == 2
    assert sink.handled == [events[0].id, events[2].id]  # each run's run_started


class Held:
    """A sink that, on its first event, waits (inside the delivering transaction) until let go."""

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.holding = threading.Event()
        self.let_go = threading.Event()

    def handle(self, tx: Writer, event: DomainEvent) -> None:
        assert event.id is not None
        if not self.handled:
            self.holding.set()
            assert self.let_go.wait(60)
        self.handled.append(event.id)


def test_two_dispatchers_on_one_database_never_deliver_an_event_twice(
        engine: Engine, clock: FakeClock, database_url: str) -> None:
    """A second process's dispatcher (its own Database) skips the event the first is
    delivering right now, and that run's later events, on PostgreSQL (SKIP LOCKED: it
    delivers the other run's events meanwhile); on SQLite it waits for the write lock and
    finds the events delivered. Either way each event reaches one sink, once."""
    for _ in range(2):  # each run: run_started, then gate_opened
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    with engine.db.read() as s:
        events = s.exec(select(Event.id, Event.run_id).order_by(col(Event.id))).all()
    first, second = events[:2], events[2:]
    other_db = Database(database_url)
    a, b = Held(), Held()
    b.handled.append(0)  # b never waits
    try:
        delivering = threading.Thread(
            target=Dispatcher(engine.db, a, clock, together=8).deliver_pending)
        delivering.start()
        assert a.holding.wait(60)  # a holds the first run's first event, uncommitted
        other = threading.Thread(
            target=Dispatcher(other_db, b, clock, together=8).deliver_pending)
        other.start()
        if dialect.locks_rows(other_db.engine.dialect.name):
            other.join(60)
            assert not other.is_alive(), "the second dispatcher waited for the held row"
            assert b.handled[1:] == [e.id for e in second]  # the other run's, meanwhile
        a.let_go.set()
        delivering.join(60)
        other.join(60)
        assert not delivering.is_alive() and not other.is_alive()
    finally:
        a.let_go.set()
        other_db.dispose()
    handled = a.handled + b.handled[1:]
    assert sorted(handled) == [e.id for e in events]  # each event once
    assert a.handled[:2] == [e.id for e in first]  # the first run's, in order, by a
    with engine.db.read() as s:
        rows = s.exec(select(Event).order_by(col(Event.id))).all()
    assert all(row.delivered_at is not None and row.attempts == 1 for row in rows)
