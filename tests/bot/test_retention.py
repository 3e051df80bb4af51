"""Rows Slack delivery is done with are deleted after the window; a decision still updates
every copy of its gate, and nothing still open, failed or young is deleted."""

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import col, func, select

from bot.retention import Retention
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from storage import rows
from storage.models import Event, SlackInbox, SlackOutbox, SlackRef, TraceEntry
from tests.bot.conftest import ALICE, DAVE, PAYMENTS, Baton
from tests.conftest import TEST_FLOWS, make_settings

WEEK = timedelta(days=7)


def count(engine: Engine, model: type) -> int:  # type: ignore[type-arg]
    with engine.db.read() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_after_the_window_a_decision_still_updates_its_dm_copy(make_baton) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    baton: Baton = make_baton(TEST_FLOWS, clock=clock)
    baton.driver.slash_command("run escalating", user=ALICE, channel=PAYMENTS)
    baton.settle()
    clock.advance(timedelta(minutes=30))
    baton.engine.fire_due_timers()  # level 2: Dave gets the gate by DM
    baton.settle()
    (dm,) = baton.dms(DAVE)
    trace, refs = count(baton.engine, TraceEntry), count(baton.engine, SlackRef)

    later = FakeClock(clock.now() + WEEK + timedelta(hours=1))
    deleted = Retention(baton.engine.db, later, WEEK, batch=3).sweep()
    assert deleted > 10
    for model in (SlackOutbox, SlackInbox, Event):
        assert count(baton.engine, model) == 1  # each table's newest row stays (its id)
    assert (count(baton.engine, TraceEntry), count(baton.engine, SlackRef)) == (trace, refs)

    # Dave decides from the DM: its copy is found where it lives, and updated as the
    # channel's message is
    baton.driver.click(user=DAVE, action_id="gate.decide.approve", channel=dm.channel, ts=dm.ts)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "succeeded"
    assert "*Approved* by <@U0DAVE001>" in str(baton.slack.workspace.message(dm.channel, dm.ts).blocks)
    gate = baton.gate_message()
    assert "*Approved* by <@U0DAVE001>" in str(baton.slack.workspace.message(PAYMENTS, gate.ts).blocks)


def test_what_is_open_failed_or_young_is_kept(test_engine: Engine, clock: FakeClock) -> None:
    old, young = clock.now() - WEEK - timedelta(hours=1), clock.now() - timedelta(days=6)
    with test_engine.db.write() as s:
        for status, at in [("sent", old), ("superseded", old), ("pending", old), ("unsure", old),
                           ("failed", old), ("sent", young)]:
            rows.add(s, SlackOutbox, {"lane": "x", "method": "chat.postMessage",
                                      "status": status, "created_at": at})
        for n, (status, at) in enumerate([("done", old), ("pending", old), ("failed", old),
                                          ("done", young)]):
            rows.add(s, SlackInbox, {"key": f"k{n}", "kind": "action", "status": status,
                                     "received_at": at})
        for delivered, at in [(old, old), (None, old), (young, young)]:
            rows.add(s, Event, {"kind": "run_started", "created_at": at, "delivered_at": delivered})
        # and one row just written in each
        rows.add(s, SlackOutbox, {"lane": "x", "method": "chat.postMessage", "created_at": clock.now()})
        rows.add(s, SlackInbox, {"key": "now", "kind": "action", "received_at": clock.now()})
        rows.add(s, Event, {"kind": "run_started", "created_at": clock.now()})

    retention = Retention(test_engine.db, clock, WEEK, batch=2)
    assert retention.sweep() == 2 + 1 + 1
    with test_engine.db.read() as s:
        outbox = sorted((r.status, r.created_at.day) for r in s.exec(select(SlackOutbox)))
        inbox = sorted((r.status, r.received_at.day) for r in s.exec(select(SlackInbox)))
        events = sorted((r.delivered_at is not None, r.created_at.day) for r in s.exec(select(Event)))
    today = clock.now().day
    assert outbox == sorted([("pending", old.day), ("unsure", old.day), ("failed", old.day),
                             ("sent", young.day), ("pending", today)])
    assert inbox == sorted([("pending", old.day), ("failed", old.day), ("done", young.day),
                            ("pending", today)])
    assert events == sorted([(False, old.day), (True, young.day), (False, today)])
    assert retention.sweep() == 0  # the walk goes on from where it stopped

    clock.advance(timedelta(days=2))  # the young rows are old now
    assert retention.sweep() == 3
    with test_engine.db.read() as s:
        assert s.exec(select(func.count()).select_from(Event)
                      .where(col(Event.delivered_at).is_(None))).one() == 2  # never deleted
    assert Retention(test_engine.db, clock, None).sweep() == 0  # BATON_KEEP_DELIVERED_DAYS=0


def test_a_window_shorter_than_slacks_retries_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="at least 1: Slack delivers a request again"):
        make_settings(tmp_path / "b.db", BATON_KEEP_DELIVERED_DAYS="0.01")
    assert make_settings(tmp_path / "b.db", BATON_KEEP_DELIVERED_DAYS="0").keep_delivered_days == 0


@pytest.mark.parametrize(("days", "kept"), [("7", False), ("0", True)])
def test_the_servers_sweep_deletes_after_the_configured_window_and_0_keeps_all(
        make_baton, days: str, kept: bool) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    baton: Baton = make_baton(clock=clock, BATON_KEEP_DELIVERED_DAYS=days)
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE,
                               channel=PAYMENTS)
    baton.settle()
    assert baton.engine.get_run("R-1").status == "succeeded"
    before = [count(baton.engine, model) for model in (SlackOutbox, SlackInbox, Event)]
    assert all(before)
    clock.advance(timedelta(days=8))
    baton.service.timers.sweep()  # what `baton serve` runs every BATON_TIMER_SWEEP
    after = [count(baton.engine, model) for model in (SlackOutbox, SlackInbox, Event)]
    assert after == (before if kept else [1, 1, 1])  # the newest row of each stays


def test_no_id_is_handed_out_again_behind_the_walk(test_engine: Engine, clock: FakeClock) -> None:
    """SQLite gives a new row the highest id + 1: were every row deleted, the next would
    get an id the walk has passed, and stay for good."""
    def sent(at):  # type: ignore[no-untyped-def]
        with test_engine.db.write() as s:
            rows.add(s, SlackOutbox, {"lane": "x", "method": "chat.postMessage", "status": "sent",
                                      "created_at": at})

    for _ in range(3):
        sent(clock.now() - WEEK - timedelta(hours=1))
    retention = Retention(test_engine.db, clock, WEEK)
    assert retention.sweep() == 2
    sent(clock.now())
    clock.advance(WEEK + timedelta(hours=1))
    sent(clock.now())
    assert retention.sweep() == 2  # the one kept as newest, and the one written after it
    with test_engine.db.read() as s:
        assert s.exec(select(SlackOutbox.id)).all() == [5]
