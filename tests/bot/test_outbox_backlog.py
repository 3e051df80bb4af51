"""A backlog bigger than the outbox's batch: one wake-up sends all of it (it used to send
one batch per poll, so Slack caught up a minute after a burst), in order per lane, and a
burst of App Home publishes for one person is sent once."""

import tempfile
import time
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import event
from sqlmodel import col, select, update

from bot.outbox import OutboxSender, enqueue
from orchestrator.clock import SystemClock
from sandbox import EmulatorServer, workspace_from_org
from storage.engine import Database
from storage.migrate import ensure_schema
from storage.models import SlackOutbox
from tests.bot.conftest import ALICE, BOB, ORG, PAYMENTS


def _slack_and_outbox(emulator: EmulatorServer, database_url: str) -> tuple[Any, Database, WebClient]:
    """A fresh workspace in the emulator, a migrated database, and a Web API client for it."""
    workspace = workspace_from_org(ORG)
    emulator.reset(workspace)
    db = Database(database_url)
    ensure_schema(db)
    return workspace, db, WebClient(token=workspace.app.bot_token, base_url=emulator.api_url,
                                    timeout=5)


def test_one_wake_up_sends_a_backlog_of_many_batches(emulator: EmulatorServer,
                                                      database_url: str) -> None:
    workspace, db, client = _slack_and_outbox(emulator, database_url)
    now = SystemClock().now()
    with db.write() as s:
        for n in range(60):  # two lanes (threads), in order within each
            enqueue(s, lane=f"run:{n % 2}", method="chat.postMessage", at=now,
                    payload={"channel": PAYMENTS, "text": f"lane {n % 2} message {n}"})
        for n in range(40):  # a burst of home tabs for two people
            user = (ALICE, BOB)[n % 2]
            enqueue(s, lane=f"home:{user}", method="views.publish", at=now,
                    supersede=f"home:{user}",
                    payload={"user_id": user, "view": {"type": "home", "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": f"version {n}"}}]}})
    # a poll far longer than the test may take: only the one wake-up can send it all
    sender = OutboxSender(db, client, SystemClock(), poll=600.0, batch=10)
    sender.start()
    try:
        sender.wake()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.read() as s:
                left = s.exec(select(SlackOutbox.id).where(
                    col(SlackOutbox.status).in_(("pending", "sending", "unsure")))).all()
            if not left:
                break
            time.sleep(0.05)
        assert left == [], f"{len(left)} calls still queued after one wake-up"
    finally:
        sender.stop()
        db.dispose()

    posted = [m.text for m in workspace.messages(PAYMENTS, include_replies=False)]
    for lane in (0, 1):
        mine = [t for t in posted if t.startswith(f"lane {lane} ")]
        assert mine == [f"lane {lane} message {n}" for n in range(lane, 60, 2)]
    homes = [c for c in emulator.calls_to("views.publish", ok=True)]
    assert len(homes) <= 10  # superseded ones were never sent...
    for user, last in ((ALICE, 38), (BOB, 39)):  # ...and each person got the newest
        views = [c for c in homes if c.args.get("user_id") == user]
        assert views and f"version {last}" in str(views[-1].args.get("view"))


def test_a_slow_slack_call_does_not_hold_up_other_runs_messages(emulator: EmulatorServer,
                                                                database_url: str) -> None:
    """Lanes (runs) are sent side by side: while Slack takes a second to answer each post,
    four runs' posts are in flight at once, not one after another."""
    _, db, client = _slack_and_outbox(emulator, database_url)
    emulator.faults.next("chat.postMessage", times=8, delay=1.0)  # Slack is slow
    now = SystemClock().now()
    with db.write() as s:
        for n in range(8):
            enqueue(s, lane=f"run:{n}", method="chat.postMessage", at=now,
                    payload={"channel": PAYMENTS, "text": f"run {n}"})
    sender = OutboxSender(db, client, SystemClock(), poll=600.0, lanes_at_once=4)
    try:
        outcome = sender.deliver()
    finally:
        sender.stop()
        db.dispose()
    assert outcome.sent == 8
    answered = sorted(c.at for c in emulator.calls_to("chat.postMessage", ok=True))
    assert len(answered) == 8
    # One after another, four answers would span at least three seconds.
    assert answered[3] - answered[0] < 1.0, answered
    assert answered[7] - answered[4] < 1.0, answered


def test_a_queued_post_rewritten_after_the_sender_read_it_goes_out_rewritten(
        emulator: EmulatorServer, database_url: str) -> None:
    """The sender has read a batch; the event pump then rewrites a queued card post (its run
    reached the gate, see `SlackSink._update_card`); when the sender claims the row, Slack
    gets the card as rewritten, not the copy the sender read first."""
    _, db, client = _slack_and_outbox(emulator, database_url)
    now = SystemClock().now()
    with db.write() as s:
        enqueue(s, lane="run:1", method="chat.postMessage", at=now, ref="R-1:card",
                payload={"channel": PAYMENTS, "text": "R-1: running"})
    with db.read() as s:
        (read_first,) = s.exec(select(SlackOutbox)).all()
    with db.write() as s:
        s.exec(update(SlackOutbox).where(col(SlackOutbox.id) == read_first.id)
               .values(payload={"channel": PAYMENTS, "text": "R-1: waiting for a decision"}))
    sender = OutboxSender(db, client, SystemClock(), poll=600.0)
    try:
        assert sender._deliver_lane([read_first], SystemClock().now()).sent == 1
        with db.read() as s:
            assert s.exec(select(SlackOutbox.status)).one() == "sent"
    finally:
        sender.stop()
        db.dispose()
    (posted,) = emulator.calls_to("chat.postMessage", ok=True)
    assert posted.args["text"] == "R-1: waiting for a decision"


def test_a_lanes_calls_cost_one_write_transaction_each(emulator: EmulatorServer,
                                                       database_url: str) -> None:
    """A call is marked sent in the transaction that claims the lane's next call: a run's
    card, its thread reply and an update of the card take four write transactions, not
    six. Each reply still finds the message it refers to, and every row ends `sent`."""
    workspace, db, client = _slack_and_outbox(emulator, database_url)
    now = SystemClock().now()
    with db.write() as s:
        enqueue(s, lane="run:1", method="chat.postMessage", at=now, ref="R-1:card",
                payload={"channel": PAYMENTS, "text": "R-1: running"})
        enqueue(s, lane="run:1", method="chat.postMessage", at=now, thread_ref="R-1:card",
                payload={"text": "in the thread"})
        enqueue(s, lane="run:1", method="chat.update", at=now, target_ref="R-1:card",
                payload={"text": "R-1: done"})
    # The writer commits on the driver connection, past SQLAlchemy's events: count the
    # COMMITs the drivers send (SQLite's statement trace, libpq's protocol trace).
    commits: list[object] = []
    traces: list[Any] = []

    def trace(connection: Any, _record: Any) -> None:
        if db.is_sqlite:
            connection.set_trace_callback(
                lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
        else:
            traces.append(tempfile.TemporaryFile())  # noqa: SIM115 (read and closed below)
            connection.pgconn.trace(traces[-1].fileno())

    db.engine.dispose()  # connections made from now on are traced
    event.listen(db.engine, "connect", trace)
    sender = OutboxSender(db, client, SystemClock(), poll=600.0)
    try:
        assert sender.deliver().sent == 3
    finally:
        sender.stop()
    try:
        with db.read() as s:
            assert s.exec(select(SlackOutbox.status)).all() == ["sent"] * 3
    finally:
        db.dispose()
    for out in traces:
        out.seek(0)
        commits += [line for line in out.read().decode().splitlines()
                    if line.split("\t")[1:2] == ["F"] and line.endswith('Query\t "COMMIT"')]
        out.close()
    assert len(commits) == 4
    (card,) = workspace.messages(PAYMENTS, include_replies=False)
    assert card.text == "R-1: done"
    assert [m.text for m in workspace.replies(PAYMENTS, card.ts)][-1] == "in the thread"
