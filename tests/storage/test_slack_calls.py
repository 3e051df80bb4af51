"""The statements the Slack event sink runs on the calls it queued (storage.slack), racing
the outbox sender as they do in `baton serve`: another Database stands for the sender."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from storage import slack
from storage.engine import Database
from storage.migrate import ensure_schema

CARD = {"channel": "C1", "text": "R-1: running"}
WAITING = {"text": "R-1: waiting for a decision"}


def _queue_card(db: Database) -> int:
    with db.write() as s:
        slack.queue_call(s, {"run_id": None, "lane": "run:1", "method": "chat.postMessage",
                             "payload": CARD, "ref": "R-1:card", "created_at": datetime.now(UTC)})
    with db.read() as s:
        return int(s.execute(sa.select(slack.OUTBOX.c.id)).scalar_one())


def _payload(db: Database, call_id: int) -> dict[str, str]:
    with db.read() as s:
        return dict(s.execute(sa.select(slack.OUTBOX.c.payload)
                              .where(slack.OUTBOX.c.id == call_id)).scalar_one())


def test_a_queued_post_is_rewritten_in_the_transaction_that_queued_it(database_url: str) -> None:
    """The run reached its gate in the batch of events that queued its card: the post not
    yet written is found and rewritten (one call to Slack); once sent, it is not."""
    db = Database(database_url)
    try:
        ensure_schema(db)
        with db.write() as s:
            slack.queue_call(s, {"lane": "run:1", "method": "chat.postMessage", "payload": CARD,
                                 "ref": "R-1:card", "created_at": datetime.now(UTC)})
            assert slack.rewrite_queued_post(s, "R-1:card", WAITING)
            assert not slack.rewrite_queued_post(s, "R-2:card", WAITING)  # no such post
        with db.read() as s:
            call_id = int(s.execute(sa.select(slack.OUTBOX.c.id)).scalar_one())
        assert _payload(db, call_id) == {**CARD, **WAITING}
        with db.writer() as w:
            slack.claim_call(w, call_id, "sender", datetime.now(UTC) + timedelta(seconds=30))
        with db.write() as s:
            assert not slack.rewrite_queued_post(s, "R-1:card", {"text": "R-1: done"})
        assert _payload(db, call_id) == {**CARD, **WAITING}
    finally:
        db.dispose()


def test_a_post_a_sender_is_claiming_is_not_rewritten_behind_its_back(database_url: str) -> None:
    """The sender has locked the card's post and marked it `sending`, not yet committed; the
    event sink's rewrite waits for it, then finds the post no longer pending and says so
    (its caller queues a `chat.update` instead). Read without the lock, the post would look
    pending and the rewrite would land on a call already on its way: the card would never
    show the new state."""
    db, sender = Database(database_url), Database(database_url)
    rewrote: list[bool] = []

    def rewrite() -> None:
        with db.write() as s:
            rewrote.append(slack.rewrite_queued_post(s, "R-1:card", WAITING))

    try:
        ensure_schema(db)
        call_id = _queue_card(db)
        thread = threading.Thread(target=rewrite)
        with sender.writer() as w:
            locked = slack.lock_call(w, call_id)
            assert locked is not None and locked.status == "pending"
            slack.claim_call(w, call_id, "sender", datetime.now(UTC) + timedelta(seconds=30))
            thread.start()
            if db.is_postgresql:  # the rewrite has read the row, or is waiting to: on the lock
                _wait_for_a_lock_wait(sender)
            # (SQLite: the rewrite's transaction cannot begin while the sender's is open)
        thread.join(30)
        assert rewrote == [False]
        assert _payload(db, call_id) == CARD
    finally:
        db.dispose()
        sender.dispose()


def _wait_for_a_lock_wait(db: Database) -> None:
    """Until another backend of this database waits on a lock (pg_stat_activity)."""
    deadline = time.monotonic() + 30
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
    with db.engine.connect() as conn:
        while not conn.execute(query).scalar():
            assert time.monotonic() < deadline, "the rewrite never waited for the sender's lock"
            time.sleep(0.01)
            conn.rollback()  # a fresh snapshot of pg_stat_activity
